"""medcloak.learn."""
