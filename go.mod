module github.com/llm-go/llm

go 1.26

require (
	github.com/ollama/ollama v0.17.4
	github.com/spf13/pflag v1.1.0
	github.com/x448/float16 v0.8.4
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/kr/pretty v0.3.0 // indirect
	github.com/rogpeppe/go-internal v1.8.0 // indirect
	gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
)
