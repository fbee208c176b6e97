// @ts-check
import { createRequire } from "node:module";
import { createEcmaScriptPlugin, safeIdentifier } from "@bufbuild/protoplugin";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { methodId, methodName } from "./method-id.js";

/**
 * @typedef {import("@bufbuild/protoplugin").Schema} Schema
 * @typedef {import("@bufbuild/protoplugin").GeneratedFile} GeneratedFile
 * @typedef {import("@bufbuild/protobuf").DescFile} DescFile
 * @typedef {import("@bufbuild/protobuf").DescService} DescService
 * @typedef {import("@bufbuild/protobuf").DescMethod} DescMethod
 */

/**
 * The version of this plugin, written into the header of generated files:
 * the version in its package.json, which the Go tests hold equal to the
 * protows module's.
 */
export const version = /** @type {{version: string}} */ (createRequire(import.meta.url)("../package.json")).version;

/** The module of the TypeScript runtime the generated clients wrap. */
const runtimeModule = "@protows/client";

/**
 * The protobuf package of the wire protocol: its AuthService is served by
 * the transport and called by the runtime itself, so nothing is generated
 * for it.
 */
const builtinPackage = "protows.v1";

/**
 * Method names that the client class must not use as they are: an object
 * with a "then" method is a thenable, so `await client` or returning the
 * client from an async function would call it.
 */
const reservedClassMembers = new Set(["then"]);

/**
 * The name of a method of the client class: protobuf-es's localName of the
 * method (already safe as an object property), with "$" appended to names in
 * reservedClassMembers, as protobuf-es does for its own reserved names.
 *
 * @param {DescMethod} method
 * @returns {string}
 */
function clientMethodName(method) {
  return reservedClassMembers.has(method.localName) ? `${method.localName}$` : method.localName;
}

/**
 * protoc-gen-protows-es writes, beside protoc-gen-es's name_pb.ts, a file
 * name_protows.ts with a typed client class for each service. It takes
 * protoplugin's standard options (target, import_extension, ...) and no
 * others.
 */
export const protocGenProtowsEs = createEcmaScriptPlugin({
  name: "protoc-gen-protows-es",
  version: `v${version}`,
  parseOptions,
  generateTs,
});

/**
 * Every option protoplugin does not know itself is an error: a misspelled
 * option must not be ignored.
 *
 * @param {{key: string, value: string}[]} rawOptions
 * @returns {object}
 */
function parseOptions(rawOptions) {
  const [first] = rawOptions;
  if (first !== undefined) {
    throw new Error(`unknown option "${first.key}" (protoc-gen-protows-es takes only protoplugin's standard options)`);
  }
  return {};
}

/**
 * @param {Schema} schema
 */
function generateTs(schema) {
  const files = schema.files.filter(
    (file) => file.proto.package !== builtinPackage && file.services.length > 0,
  );
  check(files);
  for (const file of files) {
    const f = schema.generateFile(`${file.name}_protows.ts`);
    f.preamble(file);
    for (const service of file.services) {
      generateService(f, service);
    }
  }
}

/**
 * check rejects what the generated clients cannot express, before anything
 * is generated: two methods with one wire id in the run.
 *
 * @param {DescFile[]} files
 */
function check(files) {
  /** @type {Map<number, string>} */
  const ids = new Map();
  for (const file of files) {
    for (const service of file.services) {
      for (const method of service.methods) {
        const full = methodName(method);
        const id = methodId(full);
        const other = ids.get(id);
        if (other !== undefined) {
          throw new Error(`${file.proto.name}: method id 0x${id.toString(16).padStart(8, "0")} of ${full} collides with ${other}; rename one of them`);
        }
        ids.set(id, full);
      }
    }
  }
}

/**
 * @param {GeneratedFile} f
 * @param {DescService} service
 */
function generateService(f, service) {
  const Client = f.import("Client", runtimeModule, true);
  const CallOptions = f.import("CallOptions", runtimeModule, true);
  const StreamOptions = f.import("StreamOptions", runtimeModule, true);
  const ClientStreamOptions = f.import("ClientStreamOptions", runtimeModule, true);
  const BidiStream = f.import("BidiStream", runtimeModule, true);
  const MessageInitShape = f.import("MessageInitShape", "@bufbuild/protobuf", true);
  const serviceDesc = f.importSchema(service);
  const name = safeIdentifier(`${service.name}Client`);
  f.print(f.jsDoc(`${name} calls ${service.typeName} through a protows client.\n\n${docText(f, service)}`));
  f.print(f.export("class", name), " {");
  f.print("  readonly #client: ", Client, ";");
  f.print();
  f.print("  /**");
  f.print("   * @param client The connection the calls are made on.");
  f.print("   */");
  f.print("  constructor(client: ", Client, ") {");
  f.print("    this.#client = client;");
  f.print("  }");
  for (const method of service.methods) {
    const input = f.importSchema(method.input, true);
    const output = f.importShape(method.output);
    const desc = [serviceDesc, ".method.", method.localName];
    f.print();
    let text = docText(f, method);
    if (method.methodKind === "server_streaming") {
      text = addParagraph(text, "Iterate over the stream with `for await`: it ends when the server ends\nit, and throws a ProtowsError when it fails. Stop it early with `break`\nor with `options.signal`.");
      f.print(f.jsDoc(text, "  "));
      f.print("  ", clientMethodName(method), "(request: ", MessageInitShape, "<typeof ", input, ">, options?: ", StreamOptions, "): AsyncIterable<", output, "> {");
      f.print("    return this.#client.serverStream(", ...desc, ", request, options);");
    } else if (method.methodKind === "client_streaming") {
      text = addParagraph(text, "The requests are sent as the server's credit allows, then the call\nwaits for the response. The promise rejects with a ProtowsError when\nthe call fails (`unavailable` when the connection drops: the call is\nnever resumed), or with what `requests` threw.");
      f.print(f.jsDoc(text, "  "));
      f.print("  ", clientMethodName(method), "(requests: AsyncIterable<", MessageInitShape, "<typeof ", input, ">> | Iterable<", MessageInitShape, "<typeof ", input, ">>, options?: ", ClientStreamOptions, "): Promise<", output, "> {");
      f.print("    return this.#client.clientStream(", ...desc, ", requests, options);");
    } else if (method.methodKind === "bidi_streaming") {
      const outputSchema = f.importSchema(method.output, true);
      text = addParagraph(text, "Write with `send` and `closeSend`, read with `for await`: the iteration\nends when the server ends the call, and throws a ProtowsError when it\nfails (`unavailable` when the connection drops: the call is never\nresumed). Stop it with `close`, `break` or `options.signal`.");
      f.print(f.jsDoc(text, "  "));
      f.print("  ", clientMethodName(method), "(options?: ", ClientStreamOptions, "): ", BidiStream, "<typeof ", input, ", typeof ", outputSchema, "> {");
      f.print("    return this.#client.bidiStream(", ...desc, ", options);");
    } else {
      text = addParagraph(text, "The promise rejects with a ProtowsError when the call fails.");
      let options = "options";
      if (idempotent(method)) {
        // The runtime retries a call after a reconnect only when told to.
        text = addParagraph(text, "The method is idempotent, so the call is sent again after a reconnect\n(unless `options.idempotent` is false).");
        options = "{ idempotent: true, ...options }";
      }
      f.print(f.jsDoc(text, "  "));
      f.print("  ", clientMethodName(method), "(request: ", MessageInitShape, "<typeof ", input, ">, options?: ", CallOptions, "): Promise<", output, "> {");
      f.print("    return this.#client.unary(", ...desc, ", request, ", options, ");");
    }
    f.print("  }");
  }
  f.print("}");
  f.print();
}

/**
 * idempotent reports whether calls to method may be repeated safely: its
 * idempotency_level is IDEMPOTENT or NO_SIDE_EFFECTS.
 *
 * @param {DescMethod} method
 * @returns {boolean}
 */
function idempotent(method) {
  return method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
    method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
}

/**
 * docText is the JSDoc text protoplugin writes for desc (its comments from
 * the .proto file, "@generated from", "@deprecated"), before it becomes a
 * comment block, so that more text can go in. Taking it from protoplugin
 * keeps the rules of protoc-gen-es (comment cleaning, escaping of the end
 * of a comment) rather than copying them.
 *
 * @param {GeneratedFile} f
 * @param {DescService | DescMethod} desc
 * @returns {string}
 */
function docText(f, desc) {
  const p = f.jsDoc(desc);
  if (typeof p === "object" && p !== null && "kind" in p && p.kind === "es_jsdoc") {
    // buf's lint directives are not documentation.
    return p.text
      .split("\n")
      .filter((line) => !line.trim().startsWith("buf:lint:ignore "))
      .join("\n")
      .replace(/\n\n+@generated/, "\n\n@generated");
  }
  throw new Error(`protoc-gen-protows-es: unexpected JSDoc printable from protoplugin for ${desc.toString()}`);
}

/**
 * addParagraph inserts a paragraph before the block tags protoplugin ends a
 * JSDoc text with ("@generated from", then maybe "@deprecated"), or at the
 * end of a text without them.
 *
 * @param {string} text
 * @param {string} paragraph
 * @returns {string}
 */
function addParagraph(text, paragraph) {
  const lines = text.split("\n");
  const tags = lines.findIndex((line) => line.startsWith("@generated from "));
  const before = tags < 0 ? lines : lines.slice(0, tags);
  const after = tags < 0 ? [] : lines.slice(tags);
  while (before.length > 0 && before[before.length - 1] === "") {
    before.pop();
  }
  return [...before, ...(before.length > 0 ? [""] : []), paragraph, "", ...after].join("\n");
}
