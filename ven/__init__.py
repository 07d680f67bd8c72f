"""crowdflex ven package."""
