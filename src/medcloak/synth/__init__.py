"""medcloak.synth."""
