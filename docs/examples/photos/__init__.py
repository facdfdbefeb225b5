"""The example app of the tutorial: photos that get a thumbnail when someone selects them."""
