import SMPCtlClient
import SMPCtlDiagnosis

extension GlobalOptions {
    /// Runs one command against the device and renders its result: `text` as the lines people read,
    /// `json` as the one document `--json` prints. A failure is reported by ``withClient(operation:_:)``
    /// (message, explanation, exit status), so the command only says how its result reads.
    func runDeviceCommand<Result>(
        operation: OperationKind? = nil,
        _ command: (SMPClient) async throws(SMPClientError) -> Result,
        text: (Result) -> [String],
        json: (Result) -> JSONValue
    ) async throws {
        let result = try await withClient(operation: operation) { client, _ throws(SMPClientError) in
            try await command(client)
        }
        let output = Output(json: self.json)
        text(result).forEach(output.line)
        output.document(json(result))
    }
}
