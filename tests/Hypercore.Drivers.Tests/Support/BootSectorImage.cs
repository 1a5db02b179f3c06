using System.Text;

namespace Hypercore.Drivers.Tests.Support;

/// <summary>
/// A real bootable disk image small enough to write by hand: an MBR boot sector that prints a line on COM1 and
/// halts. QEMU boots it through SeaBIOS from a virtio disk exactly as it boots a NanoVMs image (whose first
/// sector is Nanos' boot stage), so the unikernel driver's direct path is exercised end to end under TCG.
/// </summary>
internal static class BootSectorImage
{
    public const string Marker = "HYPERCORE-UNIKERNEL-READY";

    public static string Write(string path)
    {
        var code = new List<byte>
        {
            0x31, 0xC0,             // xor ax, ax
            0x8E, 0xD8,             // mov ds, ax
            0xBE, 0x15, 0x7C,       // mov si, 0x7C15 (message)
            0xBA, 0xF8, 0x03,       // mov dx, 0x3F8 (COM1)
            0xAC,                   // loop: lodsb
            0x84, 0xC0,             // test al, al
            0x74, 0x03,             // jz done
            0xEE,                   // out dx, al
            0xEB, 0xF8,             // jmp loop
            0xF4,                   // done: hlt
            0xEB, 0xFD,             // jmp done
        };
        code.AddRange(Encoding.ASCII.GetBytes(Marker + "\r\n\0"));
        var image = new byte[1024 * 1024];
        code.CopyTo(image);
        image[510] = 0x55;
        image[511] = 0xAA;
        File.WriteAllBytes(path, image);
        return path;
    }
}
