"""medcloak.attacks."""
