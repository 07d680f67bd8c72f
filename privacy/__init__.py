"""crowdflex privacy package."""
