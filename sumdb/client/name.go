package client

// DefaultGOSUMDB returns what an empty GOSUMDB means to the go command:
// the name of its built-in checksum database, whose key Open knows.
func DefaultGOSUMDB() string { return goName() }
