"""Building blocks shared by the methods: losses, pseudo labels, mixing, EMA teachers."""
