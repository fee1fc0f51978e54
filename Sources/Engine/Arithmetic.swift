// Placeholder until the elementwise operations land.
extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map { $0 + $1 })
    }
}
