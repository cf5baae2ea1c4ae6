"""medcloak.obfuscation."""
