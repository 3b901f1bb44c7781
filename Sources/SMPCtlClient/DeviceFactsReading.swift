public import SMPCtlDiagnosis
public import SMPCtlProtocol

extension SMPClient {
    /// Reads the device's state without changing anything (echo, params, bootloader info, image
    /// list, slot info). It gathers only: `DeviceDiagnosis.findings` (SMPCtlDiagnosis) judges the
    /// facts, and ``speedAdvice(for:)`` says which settings would make uploads faster.
    ///
    /// - Parameter image: the image number an update would target, or the failing command's.
    public func readDeviceFacts(image: Int = 0) async -> DeviceFacts {
        var facts = DeviceFacts(image: image)
        do {
            _ = try await send(OSManagement.EchoRequest("smpctl diagnose"))
        } catch {
            facts.reachable = false
            facts.unreachableReason = "\(error)"
            return facts
        }
        facts.smpVersion = version
        if let parameters = try? await readParameters() {
            facts.parametersSupported = parametersSupported
            facts.parameters = parametersSupported ? parameters : nil
        }
        if let info = try? await send(OSManagement.BootloaderInfoRequest()) { facts.bootloader = info.bootloader }
        if let mode = try? await send(OSManagement.BootloaderInfoRequest(query: "mode")) { facts.bootloaderMode = mode.mode }
        do {
            facts.images = try await send(ImageManagement.StateReadRequest()).images
        } catch {
            facts.imageListError = "\(error)"
        }
        if let info = try? await send(ImageManagement.SlotInfoRequest()) { facts.slotInfo = info }
        return facts
    }

    /// Findings about slow settings for the device in `facts`, with the gain this link's model predicts
    /// (``SpeedAdvisor``); none when its parameters were not read.
    public func speedAdvice(for facts: DeviceFacts) async -> [Finding] {
        guard facts.reachable, let supported = facts.parametersSupported else { return [] }
        let parameters = facts.parameters ?? OSManagement.ParametersResponse(bufferSize: Self.defaultBufferSize, bufferCount: 1)
        return SpeedAdvisor.advise(parameters: parameters, supported: supported, link: await linkModel())
    }
}
