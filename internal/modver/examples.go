package modver

// Examples returns module versions, valid and not, as path@version (some
// escaped, as in a lookup URL), for the tests and fuzzers that take them
// in, such as those of the server's lookup path.
func Examples() []string {
	return []string{
		"example.com/m@v1.2.3",
		"github.com/!azure/x@v1.0.0",
		"example.com/m@v1.0.0-!r!c1",
		"example.com/m@v2.0.0+incompatible",
		"example.com/m/v2@v2.0.0+incompatible",
		"gopkg.in/yaml.v2@v2.4.0",
		"golang.org/toolchain@v0.0.1-go1.21.0.linux-amd64",
		"example.com/m@v1.2.4-0.20191109021931-daa7c04131f5",
		"github.com/Azure/x@v1.0.0",
		"example.com/m@v1.2",
		"example.com/m@@v1.0.0",
		"",
	}
}
