using System.Reflection;
using System.Text.Json;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.MicroVms;

/// <summary>
/// Issue 15 (survivors): the status fields only some VMs set (guest health, images, snapshots) live in one side object
/// that a status without them does not have. Reading, writing, copying and comparing a status must behave as when
/// they were plain properties.
/// </summary>
public class MicroVmStatusRareFieldsTests
{
    private static readonly DateTimeOffset T = DateTimeOffset.UnixEpoch.AddDays(3);

    private static readonly FieldInfo Rare = typeof(MicroVmStatus).GetField("_rare", BindingFlags.Instance | BindingFlags.NonPublic)!;

    private static MicroVmStatus AllRare() => new()
    {
        Phase = Phase.Running,
        GuestReadyTime = T,
        GuestReadySeconds = 1.5,
        ConsoleBootOffset = 42,
        Images = [new ImageStatus("registry.example/k:1", "Ready", "sha256:ab", 10, 10)],
        RestoredFrom = "snap-1",
        LastSnapshot = "snap-2",
        LastSnapshotTime = T.AddMinutes(1),
    };

    [Test]
    public void Status_WithoutRareFields_HasNoSideObject()
    {
        Rare.GetValue(new MicroVmStatus { Phase = Phase.Stopped, Node = "n" }).Should().BeNull();
        Rare.GetValue(new MicroVmStatus { Images = [], GuestReadyTime = null, RestoredFrom = null }).Should().BeNull("defaults allocate nothing");
        Rare.GetValue(MicroVmStatus.Initial with { Phase = Phase.Running }).Should().BeNull();
        Rare.GetValue(AllRare()).Should().NotBeNull();
    }

    [Test]
    public void Properties_ReadBackWhatWasSet()
    {
        var s = AllRare();

        s.GuestReadyTime.Should().Be(T);
        s.GuestReadySeconds.Should().Be(1.5);
        s.ConsoleBootOffset.Should().Be(42);
        s.Images.Should().ContainSingle().Which.Reference.Should().Be("registry.example/k:1");
        s.RestoredFrom.Should().Be("snap-1");
        s.LastSnapshot.Should().Be("snap-2");
        s.LastSnapshotTime.Should().Be(T.AddMinutes(1));
        new MicroVmStatus().Images.Should().BeEmpty();
    }

    [Test]
    public void With_ChangesOneFieldOfTheCopyOnly()
    {
        var original = AllRare();

        var copy = original with { RestoredFrom = null, ConsoleBootOffset = 7 };

        copy.RestoredFrom.Should().BeNull();
        copy.ConsoleBootOffset.Should().Be(7);
        copy.GuestReadyTime.Should().Be(T);
        copy.LastSnapshot.Should().Be("snap-2");
        original.RestoredFrom.Should().Be("snap-1", "the original is unchanged");
        original.ConsoleBootOffset.Should().Be(42);
    }

    [Test]
    public void With_ClearingEveryRareField_DropsTheSideObjectAndEqualsAPlainStatus()
    {
        var cleared = AllRare() with
        {
            GuestReadyTime = null, GuestReadySeconds = null, ConsoleBootOffset = null, Images = [],
            RestoredFrom = null, LastSnapshot = null, LastSnapshotTime = null,
        };

        Rare.GetValue(cleared).Should().BeNull();
        cleared.Should().Be(new MicroVmStatus { Phase = Phase.Running });
    }

    [Test]
    public void Equals_ComparesEachRareField()
    {
        var a = AllRare();

        a.Should().Be(AllRare());
        a.Should().NotBe(a with { GuestReadyTime = T.AddSeconds(1) });
        a.Should().NotBe(a with { GuestReadySeconds = 2 });
        a.Should().NotBe(a with { ConsoleBootOffset = 43 });
        a.Should().NotBe(a with { Images = [] });
        a.Should().NotBe(a with { RestoredFrom = "other" });
        a.Should().NotBe(a with { LastSnapshot = null });
        a.Should().NotBe(a with { LastSnapshotTime = null });
        (a with { Images = [.. a.Images] }).Should().Be(a, "lists compare by content");
    }

    [Test]
    public void Json_RoundTrip_KeepsEveryField()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        foreach (var status in new[] { AllRare(), new MicroVmStatus { Phase = Phase.Stopped } })
        {
            var json = JsonSerializer.Serialize(status, options);
            var back = JsonSerializer.Deserialize<MicroVmStatus>(json, options)!;

            back.Should().Be(status, json);
            json.Should().Contain("\"guestReadyTime\"", "the side object is not visible in the shape");
            json.Should().NotContain("_rare");
        }
    }
}
