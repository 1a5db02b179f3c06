using System.Net;

namespace Hypercore.Networking.Tests;

public sealed class AddressLeasesTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hc-netw-ipam-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private AddressLeases Open(string cidr = "10.200.0.0/24", string gateway = "10.200.0.1") =>
        new(Path.Combine(_dir, "leases.db"), IPAddress.Parse(gateway), IPNetwork.Parse(cidr));

    private static string Mac(int i) => $"02:00:00:00:{i / 256:x2}:{i % 256:x2}";

    [Test]
    public async Task Lease_SameInterfaceTwice_ReturnsTheSameAddress()
    {
        using var leases = Open();
        var first = await leases.LeaseAsync("uid-a", "eth0", Mac(1), "a", null, CancellationToken.None);
        var again = await leases.LeaseAsync("uid-a", "eth0", Mac(1), "a", null, CancellationToken.None);

        again.Address.Should().Be(first.Address);
        first.Address.Should().NotBe("10.200.0.1", "the bridge's own address is never a guest's");
        leases.List().Should().ContainSingle();
    }

    [Test]
    public async Task Lease_AfterReopen_KeepsEveryLease_AndHandsOutNoDuplicate()
    {
        var before = new Dictionary<string, string>();
        using (var leases = Open())
        {
            for (var i = 0; i < 20; i++)
            {
                before[$"uid-{i}"] = (await leases.LeaseAsync($"uid-{i}", "eth0", Mac(i), "", null, CancellationToken.None)).Address;
            }
        }

        using var reopened = Open(); // a daemon restart: only the file is left
        reopened.List().Select(l => (l.Uid, l.Address)).Should().BeEquivalentTo(before.Select(kv => (kv.Key, kv.Value)));
        for (var i = 0; i < 20; i++)
        {
            (await reopened.LeaseAsync($"uid-{i}", "eth0", Mac(i), "", null, CancellationToken.None)).Address.Should().Be(before[$"uid-{i}"]);
        }

        var fresh = new List<string>();
        for (var i = 20; i < 40; i++)
        {
            fresh.Add((await reopened.LeaseAsync($"uid-{i}", "eth0", Mac(i), "", null, CancellationToken.None)).Address);
        }

        before.Values.Concat(fresh).Should().OnlyHaveUniqueItems();
        reopened.List().Should().HaveCount(40);
    }

    [Test]
    public async Task Lease_TwoInstancesOnOneFileInParallel_NeverShareAnAddress()
    {
        using var a = Open();
        using var b = Open();
        var tasks = Enumerable.Range(0, 60).Select(i => Task.Run(() =>
            (i % 2 == 0 ? a : b).LeaseAsync($"uid-{i}", "eth0", Mac(i), "", null, CancellationToken.None))).ToList();
        var got = await Task.WhenAll(tasks);

        got.Select(l => l.Address).Should().OnlyHaveUniqueItems();
        a.List().Should().HaveCount(60);
    }

    [Test]
    public async Task Release_RemovesLeasesAndForwards_AndTheAddressIsNotTheNextHandedOut()
    {
        using var leases = Open();
        var a = await leases.LeaseAsync("uid-a", "eth0", Mac(1), "", null, CancellationToken.None);
        await leases.SetForwardsAsync("uid-a", [new ForwardEntry("tcp", 8080, "uid-a", a.Address, 80)], CancellationToken.None);

        await leases.ReleaseAsync("uid-a", CancellationToken.None);
        await leases.ReleaseAsync("uid-a", CancellationToken.None); // twice is fine

        leases.List().Should().BeEmpty();
        leases.Forwards().Should().BeEmpty();
        var b = await leases.LeaseAsync("uid-b", "eth0", Mac(2), "", null, CancellationToken.None);
        b.Address.Should().NotBe(a.Address, "a released address goes to the back of the line");
    }

    [Test]
    public async Task Lease_RequestedAddressHeldByAnother_ThrowsAddressInUse()
    {
        using var leases = Open();
        await leases.LeaseAsync("uid-a", "eth0", Mac(1), "", "10.200.0.50", CancellationToken.None);

        var act = () => leases.LeaseAsync("uid-b", "eth0", Mac(2), "", "10.200.0.50", CancellationToken.None);

        (await act.Should().ThrowAsync<NetworkException>()).Which.Reason.Should().Be("AddressInUse");
        leases.List().Should().ContainSingle();
    }

    [TestCase("10.9.9.9")]
    [TestCase("10.200.0.1")]
    [TestCase("10.200.0.255")]
    public async Task Lease_RequestedAddressOutsideGuestRange_ThrowsAddressOutOfRange(string requested)
    {
        using var leases = Open();

        var act = () => leases.LeaseAsync("uid-a", "eth0", Mac(1), "", requested, CancellationToken.None);

        (await act.Should().ThrowAsync<NetworkException>()).Which.Reason.Should().Be("AddressOutOfRange");
        leases.List().Should().BeEmpty();
    }

    [Test]
    public async Task Lease_SameMacOnTwoVms_ThrowsMacInUse()
    {
        using var leases = Open();
        await leases.LeaseAsync("uid-a", "eth0", Mac(1), "", null, CancellationToken.None);

        var act = () => leases.LeaseAsync("uid-b", "eth0", Mac(1), "", null, CancellationToken.None);

        (await act.Should().ThrowAsync<NetworkException>()).Which.Reason.Should().Be("MacInUse");
    }

    [Test]
    public async Task Lease_NetworkFull_ThrowsAddressesExhausted()
    {
        using var leases = Open("10.200.0.0/29", "10.200.0.1"); // .2-.6 are the guests' (5)
        for (var i = 0; i < 5; i++)
        {
            await leases.LeaseAsync($"uid-{i}", "eth0", Mac(i), "", null, CancellationToken.None);
        }

        var act = () => leases.LeaseAsync("uid-x", "eth0", Mac(99), "", null, CancellationToken.None);

        (await act.Should().ThrowAsync<NetworkException>()).Which.Reason.Should().Be("AddressesExhausted");
        leases.List().Select(l => l.Address).Should().BeEquivalentTo(["10.200.0.2", "10.200.0.3", "10.200.0.4", "10.200.0.5", "10.200.0.6"]);
    }

    [Test]
    public async Task SetForwards_HostPortHeldByAnotherVm_ThrowsPortInUse_AndKeepsTheOldForwards()
    {
        using var leases = Open();
        await leases.SetForwardsAsync("uid-a", [new ForwardEntry("tcp", 8080, "uid-a", "10.200.0.2", 80)], CancellationToken.None);
        await leases.SetForwardsAsync("uid-b", [new ForwardEntry("tcp", 9090, "uid-b", "10.200.0.3", 80)], CancellationToken.None);

        var act = () => leases.SetForwardsAsync("uid-b", [new ForwardEntry("tcp", 8080, "uid-b", "10.200.0.3", 80)], CancellationToken.None);

        (await act.Should().ThrowAsync<NetworkException>()).Which.Reason.Should().Be("PortInUse");
        leases.Forwards().Select(f => (f.Uid, f.HostPort)).Should().BeEquivalentTo([("uid-a", 8080), ("uid-b", 9090)]);
    }
}
