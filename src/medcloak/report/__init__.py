"""medcloak.report."""
