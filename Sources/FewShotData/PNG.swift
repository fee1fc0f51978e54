import CPNG

/// Decodes PNG images in memory with libpng's simplified API.
enum PNGDecoder {
    /// A decoded image: HWC bytes with 1 (gray) or 3 (RGB) channels.
    struct Image {
        var width: Int
        var height: Int
        var channels: Int
        var pixels: [UInt8]
    }

    /// Whether the PNG in `data` stores colour (so it should decode to RGB); nil when it cannot be read.
    static func isColour(_ data: [UInt8]) throws -> Bool {
        var image = png_image()
        try begin(&image, data)
        defer { png_image_free(&image) }
        return image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
    }

    /// Decodes `data` to `channels` (1: gray, 3: RGB; alpha is composited away); throws a reason string.
    static func decode(_ data: [UInt8], channels: Int) throws -> Image {
        var image = png_image()
        try begin(&image, data)
        image.format = channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        let width = Int(image.width), height = Int(image.height)
        let (area, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0, height > 0, !overflow, area <= 1 << 26 else {
            png_image_free(&image)
            throw PNGError(reason: "unreasonable image size \(width)×\(height)")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        if ok == 0 {
            let reason = message(image)
            png_image_free(&image)
            throw PNGError(reason: reason)
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    struct PNGError: Error { var reason: String }

    private static func begin(_ image: inout png_image, _ data: [UInt8]) throws {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard data.count > 8, Array(data.prefix(8)) == signature else {
            throw PNGError(reason: "not a PNG (\(data.count) bytes without the PNG signature)")
        }
        image.version = UInt32(PNG_IMAGE_VERSION)
        let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, data.count) }
        if ok == 0 {
            let reason = message(image)
            png_image_free(&image)
            throw PNGError(reason: reason)
        }
    }

    private static func message(_ image: png_image) -> String {
        var copy = image.message
        let text = withUnsafeBytes(of: &copy) { raw -> String in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        return text.isEmpty ? "libpng could not decode the image" : text
    }
}
