"""crowdflex vtn package."""
