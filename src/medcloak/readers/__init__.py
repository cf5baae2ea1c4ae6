"""medcloak.readers."""
