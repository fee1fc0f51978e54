import Engine
import FewShotData
import Models

/// A long short-term memory cell built from engine operations, its parameters read by name from a
/// `Parameters` tree (`prefix.weight_ih` [4h × input], `prefix.weight_hh` [4h × state], `prefix.bias` [4h]).
///
/// (i, f, g, o) = (σ, σ, tanh, σ)(x·W_ihᵀ + s·W_hhᵀ + b); c′ = f ⊙ c + i ⊙ g; h′ = o ⊙ tanh(c′), where s is
/// the recurrent input (the previous hidden state, or for the attention LSTM of Matching Networks the
/// hidden state concatenated with the read-out). Gate order as PyTorch's `nn.LSTMCell`.
///
/// Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 1997.
struct LSTMCell {
    let prefix: String
    let hidden: Int

    /// Parameters for a cell with `input` inputs, `state` recurrent inputs and `hidden` units, drawn as
    /// PyTorch does: weights U(±1/√hidden), the bias the sum of two such draws (bias_ih + bias_hh).
    static func parameters<G: RandomNumberGenerator>(prefix: String, input: Int, state: Int, hidden: Int,
                                                     using rng: inout G) -> Parameters {
        let bound = 1 / Float(hidden).squareRoot()
        return Parameters([
            (prefix + ".weight_ih", Initializer.uniform([4 * hidden, input], bound: bound, using: &rng)),
            (prefix + ".weight_hh", Initializer.uniform([4 * hidden, state], bound: bound, using: &rng)),
            // PyTorch keeps two biases, bias_ih and bias_hh, each U(±1/√hidden); only their sum acts.
            (prefix + ".bias", Tensor(shape: [4 * hidden], scalars: zip(
                Initializer.uniform([4 * hidden], bound: bound, using: &rng).scalars,
                Initializer.uniform([4 * hidden], bound: bound, using: &rng).scalars).map { $0 + $1 }, requiresGrad: true)),
        ])
    }

    /// One step for a batch: x [b × input], s [b × state], c [b × hidden] → (h′, c′), each [b × hidden].
    func callAsFunction(_ x: Tensor, state s: Tensor, cell c: Tensor, _ p: Parameters) -> (h: Tensor, c: Tensor) {
        let gates = Tensor.matmul(x, p.require(prefix + ".weight_ih"), transposeB: true)
            + Tensor.matmul(s, p.require(prefix + ".weight_hh"), transposeB: true)
            + p.require(prefix + ".bias").reshaped([1, 4 * hidden])
        let i = gates.slice(axis: 1, 0..<hidden).sigmoid()
        let f = gates.slice(axis: 1, hidden..<(2 * hidden)).sigmoid()
        let g = gates.slice(axis: 1, (2 * hidden)..<(3 * hidden)).tanh()
        let o = gates.slice(axis: 1, (3 * hidden)..<(4 * hidden)).sigmoid()
        let c2 = f * c + i * g
        return (o * c2.tanh(), c2)
    }
}
