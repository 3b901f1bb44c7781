extension Duration {
    /// The duration in seconds, as a `Double`: the package's one conversion.
    package var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
