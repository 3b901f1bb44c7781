import ArgumentParser
import Foundation
import SMPCtlCBOR
import SMPCtlClient
import SMPCtlProtocol

struct RawCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw",
        abstract: "Send any SMP request and print the decoded CBOR answer.",
        discussion: """
            The body is a JSON object (--body), mapped to CBOR as RFC 8949 suggests (a string \
            written h'0a0b' is a byte string), or CBOR bytes in hex (--cbor-hex); without either it \
            is an empty map. The answer is printed in CBOR diagnostic notation, or with --json as \
            "response" (byte strings as h'...' strings) and "response_hex" (the exact body). A \
            device error is reported with its explanation (exit status 4), as for every command.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("The group: a number (0-65535) or a name such as os, image, fs.", valueName: "group"))
    var group: String
    @Option(help: ArgumentHelp("The command number (0-255).", valueName: "id")) var command: UInt8
    @Flag(help: "Send a read request (the default).") var read = false
    @Flag(help: "Send a write request.") var write = false
    @Option(help: ArgumentHelp("The body as a JSON object.", valueName: "json")) var body: String?
    @Option(name: .customLong("cbor-hex"), help: ArgumentHelp("The body as CBOR bytes in hex.", valueName: "hex"))
    var cborHex: String?

    func validate() throws {
        if read && write { throw ValidationError("--read and --write exclude each other") }
        if body != nil && cborHex != nil { throw ValidationError("--body and --cbor-hex exclude each other") }
        if SMPGroupID(nameOrNumber: group) == nil { throw ValidationError("--group: \"\(group)\" is not a group number or name") }
    }

    /// The request body from the options, or a usage message.
    func requestBody() -> Result<CBORValue, ValidationError> {
        if let body {
            do throws(CBORJSON.ParseError) {
                let value = try CBORJSON.parse(body)
                guard case .map = value else { return .failure(ValidationError("--body must be a JSON object")) }
                return .success(value)
            } catch {
                return .failure(ValidationError("--body: \(error)"))
            }
        }
        if let cborHex {
            guard let bytes = HexText.bytes(cborHex) else { return .failure(ValidationError("--cbor-hex: not hexadecimal bytes")) }
            guard bytes.count <= Int(UInt16.max) else { return .failure(ValidationError("--cbor-hex: longer than 65535 bytes")) }
            do throws(CBORError) {
                return .success(try SMPResponseDecoder.cbor.decode(bytes))
            } catch {
                return .failure(ValidationError("--cbor-hex: not one CBOR value (\(error))"))
            }
        }
        return .success(.map(CBORMap()))
    }

    func run() async throws {
        let output = Output(json: global.json)
        let value: CBORValue
        switch requestBody() {
        case .success(let body): value = body
        case .failure(let error):
            output.fail(status: .usage, message: error.message, fields: ["error": "usage"])
            throw CommandFailure(status: .usage)
        }
        guard let groupID = SMPGroupID(nameOrNumber: group) else { throw CommandFailure(status: .usage) }
        let request = SMPRawRequest(group: groupID, command: command, operation: write ? .write : .read, body: value)
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            // A request larger than the device or the path takes would be dropped without an
            // answer: say so at once. Small requests need no extra round trip for the params.
            let size = SMPHeader.size + request.bodyBytes.count
            if size > SMPClient.defaultBufferSize {
                try await client.readParameters()
                let limit = await client.maximumRequestSize()
                guard size <= limit else {
                    throw .deviceLimit("the request is \(size) bytes; the device and this link take at most \(limit) bytes per request")
                }
            }
            return try await client.send(request)
        }
        let answer = CBORValue.map(response.map)
        output.line(answer.diagnostic)
        output.document([
            "ok": true, "group": .int(Int(groupID.rawValue)), "command": .int(Int(command)),
            "operation": write ? "write" : "read", "response": Self.json(answer),
            "response_hex": .string(hexString(CBOREncoder.encode(answer))),
        ])
    }

    /// A CBOR value as JSON: maps with text keys as objects (other keys in diagnostic notation),
    /// byte strings as "h'...'" strings, integers beyond Int as their decimal text.
    static func json(_ value: CBORValue, depth: Int = 0) -> JSONValue {
        guard depth < 32 else { return .string(value.diagnostic) }
        switch value {
        case .unsigned(let u): return u <= UInt64(Int.max) ? .int(Int(u)) : .string(String(u))
        case .negative: return value.int.map(JSONValue.int) ?? .string(value.diagnostic)
        case .bytes: return .string(value.diagnostic)
        case .text(let t): return .string(t)
        case .array(let a): return .array(a.map { json($0, depth: depth + 1) })
        case .map(let m):
            var object: [String: JSONValue] = [:]
            for entry in m.entries { object[entry.key.string ?? entry.key.diagnostic] = json(entry.value, depth: depth + 1) }
            return .object(object)
        case .tagged(_, let inner): return json(inner, depth: depth + 1)
        case .bool(let b): return .bool(b)
        case .null, .undefined: return .null
        case .simple: return .string(value.diagnostic)
        case .float(let d): return d.isFinite ? .double(d) : .string(value.diagnostic)
        }
    }
}
