"""The four services of the design, each a thin shell over the muzero library."""
