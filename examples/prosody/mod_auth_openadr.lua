-- mod_auth_openadr: SASL EXTERNAL (XEP-0178) for OpenADR 2.0b clients of this Prosody host.
--
-- A client authenticates with its TLS client certificate and nothing else: the certificate must
-- chain to the host's `cafile` and be within its validity, and the account it gets is named by
-- the certificate's OpenADR fingerprint (the last 80 bits of SHA-256 over the DER encoding, as 20
-- lower-case hex digits). So the localpart of every JID on this host says which certificate
-- holds it, and a VTN reading a stanza's server-stamped 'from' knows the sender's certificate.
-- There are no passwords: every other SASL mechanism fails, and an authzid naming another
-- account is refused.
--
-- crowdflex, docs/vtn.md#xmpp. Load with: authentication = "openadr"

local new_sasl = require "util.sasl".new;
local jid_split = require "util.jid".prepped_split;

local FINGERPRINT_DIGITS = 20;

local function name_of(cert)
	local digest = cert:digest("sha256");
	if not digest or #digest < FINGERPRINT_DIGITS then
		return nil;
	end
	return digest:lower():sub(-FINGERPRINT_DIGITS);
end

local function is_fingerprint_name(username)
	return type(username) == "string" and #username == FINGERPRINT_DIGITS
		and username:match("^%x+$") ~= nil and username == username:lower();
end

local provider = {};

function provider.test_password() return nil, "passwords are not used: present a certificate"; end
function provider.get_password() return nil, "passwords are not used"; end
function provider.set_password() return nil, "passwords are not used"; end
function provider.create_user() return nil, "accounts are named by certificates"; end
function provider.delete_user() return nil, "accounts are named by certificates"; end
function provider.users() return function() return nil; end; end

function provider.user_exists(username)
	return is_fingerprint_name(username);
end

function provider.get_sasl_handler(session)
	return new_sasl(module.host, {
		external = function(authzid)
			if not session.secure then
				return nil, false;
			end
			local sock = session.conn:socket();
			local cert = sock.getpeercertificate and sock:getpeercertificate();
			if not cert then
				session.log("info", "EXTERNAL refused: no client certificate");
				return nil, false;
			end
			if not cert:validat(os.time()) then
				session.log("info", "EXTERNAL refused: client certificate outside its validity");
				return nil, "expired";
			end
			local chain_valid, chain_errors = sock:getpeerverification();
			if not chain_valid then
				local reasons = {};
				for depth, errors in pairs(chain_errors or {}) do
					reasons[#reasons + 1] = ("depth %s: %s"):format(tostring(depth), table.concat(errors, ", "));
				end
				session.log("info", "EXTERNAL refused: client certificate chain does not verify (%s)",
					table.concat(reasons, "; "));
				return nil, false;
			end
			local username = name_of(cert);
			if not username then
				return nil, false;
			end
			if authzid ~= nil and authzid ~= "" then
				local wanted, host = jid_split(authzid);
				if wanted ~= username or host ~= module.host then
					session.log("info", "EXTERNAL refused: authzid %s is not this certificate's", authzid);
					return nil, false;
				end
			end
			return username, true;
		end;
	});
end

module:provides("auth", provider);
