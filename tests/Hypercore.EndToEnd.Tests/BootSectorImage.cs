using System.Text;

namespace Hypercore.EndToEnd.Tests;

/// <summary>
/// A unikernel-shaped image for the unikernel provider: a 1 MiB raw disk whose MBR prints a line on COM1 and halts.
/// QEMU (started by ops) boots it through SeaBIOS from virtio-blk as it boots a NanoVMs image's boot stage.
/// </summary>
internal static class BootSectorImage
{
    public const string Marker = "HYPERCORE-UNIKERNEL-READY";

    public static string Write(string path)
    {
        byte[] code =
        [
            0x31, 0xC0,             // xor ax, ax
            0x8E, 0xD8,             // mov ds, ax
            0xBE, 0x15, 0x7C,       // mov si, 0x7C15 (the message, right after this code)
            0xBA, 0xF8, 0x03,       // mov dx, 0x3F8 (COM1)
            0xAC,                   // loop: lodsb
            0x84, 0xC0,             // test al, al
            0x74, 0x03,             // jz done
            0xEE,                   // out dx, al
            0xEB, 0xF8,             // jmp loop
            0xF4,                   // done: hlt
            0xEB, 0xFD,             // jmp done
        ];
        var image = new byte[1024 * 1024];
        code.CopyTo(image, 0);
        Encoding.ASCII.GetBytes(Marker + "\r\n\0").CopyTo(image, code.Length);
        image[510] = 0x55;
        image[511] = 0xAA;
        File.WriteAllBytes(path, image);
        return path;
    }
}
