import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.BufferedInputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Reads a zip from standard input with java.util.zip.ZipInputStream, front to back, as JVM
 * ingest tools do (no central directory). For each entry it prints one line, "hex(UTF-8 name)
 * size crc32 sha256", and, given a folder, extracts the entry to folder/<index>. ZipInputStream
 * checks each entry's size and CRC against its data descriptor; any failure exits non-zero.
 */
public class ZipInputStreamCheck {
    public static void main(String[] args) throws Exception {
        Path folder = args.length > 0 ? Path.of(args[0]) : null;
        HexFormat hex = HexFormat.of();
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, UTF_8);
        byte[] buffer = new byte[1 << 20];
        try (ZipInputStream zip = new ZipInputStream(new BufferedInputStream(System.in, 1 << 20), UTF_8)) {
            int index = 0;
            for (ZipEntry entry; (entry = zip.getNextEntry()) != null; index++) {
                MessageDigest sha = MessageDigest.getInstance("SHA-256");
                CRC32 crc = new CRC32();
                long size = 0;
                try (OutputStream copy = folder == null ? OutputStream.nullOutputStream()
                        : Files.newOutputStream(folder.resolve(Integer.toString(index)))) {
                    for (int n; (n = zip.read(buffer)) > 0; size += n) {
                        sha.update(buffer, 0, n);
                        crc.update(buffer, 0, n);
                        copy.write(buffer, 0, n);
                    }
                }
                out.printf("%s %d %d %s%n", hex.formatHex(entry.getName().getBytes(UTF_8)), size,
                           crc.getValue(), hex.formatHex(sha.digest()));
            }
        }
    }
}
