"""crowdflex cbp package."""
