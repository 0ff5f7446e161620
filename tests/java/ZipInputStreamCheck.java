import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.BufferedInputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipInputStream;

/**
 * Reads a zip with java.util.zip, as JVM tools and ingest pipelines do, and prints one line per
 * entry, "hex(UTF-8 name) size crc32 sha256". Without arguments, or with a folder, it reads
 * standard input with ZipInputStream, front to back (no central directory), and extracts each
 * entry to folder/<index> when given one; ZipInputStream checks each entry's size and CRC against
 * its data descriptor. With "--zipfile <path>" it reads the file with ZipFile, from the central
 * directory, in its order. Any failure exits non-zero.
 */
public class ZipInputStreamCheck {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, UTF_8);
        byte[] buffer = new byte[1 << 20];
        if (args.length == 2 && args[0].equals("--zipfile")) {
            try (ZipFile zip = new ZipFile(args[1], UTF_8)) {
                for (Enumeration<? extends ZipEntry> entries = zip.entries(); entries.hasMoreElements();) {
                    ZipEntry entry = entries.nextElement();
                    try (InputStream data = zip.getInputStream(entry)) {
                        report(out, entry, data, OutputStream.nullOutputStream(), buffer);
                    }
                }
            }
            return;
        }
        Path folder = args.length > 0 ? Path.of(args[0]) : null;
        try (ZipInputStream zip = new ZipInputStream(new BufferedInputStream(System.in, 1 << 20), UTF_8)) {
            int index = 0;
            for (ZipEntry entry; (entry = zip.getNextEntry()) != null; index++) {
                try (OutputStream copy = folder == null ? OutputStream.nullOutputStream()
                        : Files.newOutputStream(folder.resolve(Integer.toString(index)))) {
                    report(out, entry, zip, copy, buffer);
                }
            }
        }
    }

    /** Reads the entry's bytes from data to their end, copying them, and prints its line. */
    private static void report(PrintStream out, ZipEntry entry, InputStream data, OutputStream copy,
                               byte[] buffer) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        CRC32 crc = new CRC32();
        long size = 0;
        for (int n; (n = data.read(buffer)) > 0; size += n) {
            sha.update(buffer, 0, n);
            crc.update(buffer, 0, n);
            copy.write(buffer, 0, n);
        }
        HexFormat hex = HexFormat.of();
        out.printf("%s %d %d %s%n", hex.formatHex(entry.getName().getBytes(UTF_8)), size,
                   crc.getValue(), hex.formatHex(sha.digest()));
    }
}
