module example.com/starter

go 1.26.0

require (
	github.com/protows/protows v0.1.0
	google.golang.org/protobuf v1.36.12
)

require github.com/gorilla/websocket v1.5.3 // indirect
