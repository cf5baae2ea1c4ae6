"""medcloak.study."""
