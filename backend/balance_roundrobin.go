package backend

// pick returns the index of the server to try first: each in turn.
func (b *Backend) pick() int {
	return int((b.next.Add(1) - 1) % uint32(len(b.pools)))
}
