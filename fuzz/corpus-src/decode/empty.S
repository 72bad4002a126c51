# An empty input.
