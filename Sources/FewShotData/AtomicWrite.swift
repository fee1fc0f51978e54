import Foundation
import HDF5

/// Writes an HDF5 file through a temporary file in the same folder, renamed into place when complete.
enum AtomicWrite {
    static func hdf5(to path: String, _ body: (File) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        guard LayoutIO.folderExists(folder) else { throw DataError.missingPath(folder) }
        let temporary = LayoutIO.join(folder, ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try LayoutIO.mapHDF5Errors {
                let file = try File(temporary, mode: .create)
                try body(file)
                try file.close()
            }
            guard rename(temporary, path) == 0 else {
                throw DataError.hdf5("\(path): cannot move the finished file into place (errno \(errno))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }
}
