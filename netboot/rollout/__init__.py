"""Roll-outs: a set of clients moved to an image version in batches, each batch power-cycled
and watched to its OS-up report; stopped at the first batch that does not get there."""
