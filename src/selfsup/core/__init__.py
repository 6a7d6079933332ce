"""The ground floor: helpers every other layer may use (registries, distributed gather and
all-reduce); it imports nothing else of selfsup."""
