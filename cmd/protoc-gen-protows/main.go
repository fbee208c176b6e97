// Command protoc-gen-protows is a protoc and buf plugin that generates, for
// every service in a .proto file, the Go code to serve it with a protows
// router and to call it with a protows client.
//
// It writes one file, name_protows.pb.go, beside protoc-gen-go's name.pb.go
// and in the same Go package. For a service S it holds:
//
//   - SMethodMethod and SMethodMethodID: the full name and wire id of each
//     method.
//   - SHandler: the interface a server implements, with
//     UnimplementedSHandler to embed, and RegisterSHandler to put it on a
//     router.Router.
//   - SClient, from NewSClient: a typed client over a client.Client.
//
// Unary and server-streaming methods are supported; the plugin fails, naming
// the method, on client-streaming and bidirectional ones, and on two methods
// whose wire ids collide. It generates nothing for the protows.v1 package,
// whose AuthService is served by the transport itself.
//
// # Usage
//
// With buf, as a local plugin (paths=source_relative puts the output beside
// protoc-gen-go's):
//
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen/go
//	    opt: paths=source_relative
//	  - local: protoc-gen-protows
//	    out: gen/go
//	    opt: paths=source_relative
//
// The plugin takes protogen's standard options (paths, module, M) and no
// others: any other option is an error rather than silently ignored.
// docs/CODEGEN.md walks through a whole service.
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protows/protows"
)

// version is the version of protoc-gen-protows, written into the header of
// every generated file: the version of the protows module it is built from.
const version = protows.Version

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println("protoc-gen-protows v" + version)
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "protoc-gen-protows: run by protoc or buf; it takes a CodeGeneratorRequest on stdin and no arguments but --version")
		os.Exit(2)
	}
	protogen.Options{ParamFunc: rejectOption}.Run(func(p *protogen.Plugin) error {
		p.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL |
			pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
		p.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
		p.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2023
		return generate(p)
	})
}

// rejectOption is protogen's ParamFunc: protogen handles its own options
// (paths, module, M...) and hands over the rest, and this plugin has none of
// its own, so each is an error rather than silently ignored.
func rejectOption(name, _ string) error {
	return fmt.Errorf("protoc-gen-protows: unknown option %q (it takes only protogen's paths, module and M options)", name)
}
