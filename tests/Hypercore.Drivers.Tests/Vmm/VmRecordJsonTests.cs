using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// vm.json is read back by later daemons (adoption after a restart or an upgrade): its shape must not change with the
/// serializer behind it (now source-generated for Native AOT).
/// </summary>
public sealed class VmRecordJsonTests
{
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    [Test]
    public void WriteRecord_WritesSnakeCaseIndentedWithoutNulls_AndReadsItBack()
    {
        var dir = new VmDirectory(_scratch.Root, "uid-1");
        var record = new VmRecord
        {
            Uid = "uid-1", Provider = "firecracker", Key = "default/web1", Pid = 4242, PidStartTicks = 123456789,
            Binary = "/usr/bin/firecracker", ControlSocket = "/run/x/api.sock", ArgvMarker = "/run/x/api.sock",
            ConsoleLog = "/run/x/console.log", StartedAt = new DateTimeOffset(2026, 11, 29, 23, 0, 0, TimeSpan.Zero),
            Taps = ["hc0", "hc1"], Extra = new Dictionary<string, string> { ["jail"] = "/srv/jail" },
        };

        dir.WriteRecord(record);

        File.ReadAllText(dir.RecordFile).Should().Be("""
            {
              "uid": "uid-1",
              "provider": "firecracker",
              "key": "default/web1",
              "pid": 4242,
              "pid_start_ticks": 123456789,
              "binary": "/usr/bin/firecracker",
              "control_socket": "/run/x/api.sock",
              "argv_marker": "/run/x/api.sock",
              "console_log": "/run/x/console.log",
              "started_at": "2026-11-29T23:00:00+00:00",
              "taps": [
                "hc0",
                "hc1"
              ],
              "extra": {
                "jail": "/srv/jail"
              }
            }
            """);
        dir.ReadRecord().Should().BeEquivalentTo(record);
    }

    [Test]
    public void ReadRecord_NotJson_IsNull()
    {
        var dir = new VmDirectory(_scratch.Root, "uid-2");
        dir.Create();
        File.WriteAllText(dir.RecordFile, "{ not json");

        dir.ReadRecord().Should().BeNull();
    }

    [Test]
    public void ReadRecord_NeverStarted_IsNull()
    {
        new VmDirectory(_scratch.Root, "uid-3").ReadRecord().Should().BeNull("no directory at all");
        var dir = new VmDirectory(_scratch.Root, "uid-4");
        dir.Create();

        dir.ReadRecord().Should().BeNull("a directory without vm.json");
    }

    [Test]
    public void ReadRecord_AfterDeleteRecord_IsNull()
    {
        var dir = new VmDirectory(_scratch.Root, "uid-5");
        dir.WriteRecord(new VmRecord { Uid = "uid-5", Provider = "qemu", Key = "default/web5", Pid = 1, Binary = "/usr/bin/qemu-system-x86_64" });
        dir.ReadRecord().Should().NotBeNull();

        dir.DeleteRecord();

        dir.ReadRecord().Should().BeNull();
    }
}
