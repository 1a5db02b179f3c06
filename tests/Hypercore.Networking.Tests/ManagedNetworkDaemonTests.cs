using System.Diagnostics;
using System.Globalization;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Networking.Tests;

/// <summary>
/// The shipped daemon with network-managed and network-nat, run inside a namespace the test made (so its bridge,
/// dnsmasq, nft table, taps and QEMU guests live there), driven over its Unix socket: real guests (TCG) get their
/// IPAM address by DHCP, the namespace pings them, a guest fetches a file from the node and the other guest's page,
/// a port forward reaches a guest's httpd from an "outside" namespace,
/// a kill -9 and restart keep every lease and rule, and deletes leave no tap, lease, host entry or rule.
/// </summary>
[NonParallelizable]
public sealed class ManagedNetworkDaemonTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);


    [Test]
    public async Task ManagedNetwork_GuestsLeaseByDhcp_ForwardAndNatWork_Kill9KeepsLeases_DeleteLeavesNothing()
    {
        await using var ns = await Netns.CreateAsync("d");
        await using var outside = await Netns.CreateAsync("o");
        await ns.VethAsync("hcup0", outside, "eth0");
        await ns.RunAsync("ip", "addr", "add", "192.168.79.1/24", "dev", "hcup0");
        await outside.RunAsync("ip", "addr", "add", "192.168.79.2/24", "dev", "eth0");
        var root = Directory.CreateTempSubdirectory("hc-netw-e2e-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101); // dnsmasq re-reads its hosts file as its own user
        var state = Path.Combine(root, "state");
        await GuestImage.InstallAsDefaultAsync(state);
        File.SetUnixFileMode(state, (UnixFileMode)0b111_101_101);
        string[] args =
        [
            "run", "--state-dir", state, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
            "--qemu-accel", "tcg", "--node-name", "netw-e2e", "--network-managed", "--network-nat", "--network-forward-ports", "8080",
        ];
        var daemon = DaemonProcess.StartInNetns(ns.Name, Netns.VistaradDll, args);
        try
        {
            await daemon.WaitReadyAsync(Patience);
            using var client = HypercoreClient.Connect("unix://" + Path.Combine(state, "vistarad.sock"));

            var sw = Stopwatch.StartNew();
            var web = await RunAsync(client, "web", fetch: null, new PortMapping { HostPort = 8080, GuestPort = 80 });
            var webAddress = web.Status.NetworkInterfaces["eth0"].GuestAddress;
            webAddress.Should().MatchRegex(@"^10\.200\.0\.\d+/24$");
            web.Status.NetworkInterfaces["eth0"].HostDeviceName.Should().StartWith("hc");
            web.Status.NetworkInterfaces["eth0"].Bridge.Should().Be("hcbr0");
            web.Status.PortForwards.Should().Equal($"tcp 8080 -> {Ip(webAddress)}:80");
            await WaitForConsoleAsync(web, $"hypercore: net eth0 {webAddress} router 10.200.0.1");
            await WaitForConsoleAsync(web, "hypercore: httpd on port 80");
            TestContext.Progress.WriteLine($"[measure] create -> guest has its DHCP lease: {sw.Elapsed.TotalSeconds:0.0} s");

            (await QemuMacvtapTests.PingAsync(ns, Ip(webAddress), TimeSpan.FromSeconds(30))).Should().BeTrue("the node pings its guest");
            (await outside.RunAsync("busybox", "wget", "-q", "-O", "-", "http://192.168.79.1:8080/")).Should().StartWith("hypercore guest");
            (await ns.RunAsync("nft", "list", "table", "inet", "hypercore")).Should().Contain("masquerade").And.Contain("dport 8080");
            var dnsmasq = int.Parse((await File.ReadAllTextAsync(Path.Combine(state, "network", "dnsmasq.pid"))).Trim(), CultureInfo.InvariantCulture);

            ProcFs.Kill(daemon.Pid); // kill -9
            await daemon.WaitForExitAsync(Patience);
            await daemon.DisposeAsync();
            ProcFs.IsAlive(dnsmasq).Should().BeTrue("dnsmasq serves the guests while the daemon is down");
            daemon = DaemonProcess.StartInNetns(ns.Name, Netns.VistaradDll, args);
            await daemon.WaitReadyAsync(Patience);

            // The second guest fetches a file from an HTTP server on the node and the first guest's page over the bridge.
            var www = Path.Combine(root, "www");
            Directory.CreateDirectory(www);
            await File.WriteAllTextAsync(Path.Combine(www, "node.txt"), "hello from the node\n");
            using var nodeHttpd = ns.Start("busybox", "httpd", "-f", "-p", "10.200.0.1:8000", "-h", www);
            var fetch = $"http://10.200.0.1:8000/node.txt,http://{Ip(webAddress)}/";
            var api = await RunAsync(client, "api", fetch);
            var apiAddress = api.Status.NetworkInterfaces["eth0"].GuestAddress;
            apiAddress.Should().NotBe(webAddress, "a lease survives the crash and is not handed out again");
            await WaitForConsoleAsync(api, $"hypercore: net eth0 {apiAddress} router 10.200.0.1");
            await WaitForConsoleAsync(api, "hypercore: fetched http://10.200.0.1:8000/node.txt: hello from the node");
            await WaitForConsoleAsync(api, $"hypercore: fetched http://{Ip(webAddress)}/: hypercore guest web");
            (await client.GetMicroVmAsync("web")).Status.NetworkInterfaces["eth0"].GuestAddress.Should().Be(webAddress);
            File.ReadAllText(Path.Combine(state, "network", "dnsmasq.pid")).Trim().Should().Be(dnsmasq.ToString(CultureInfo.InvariantCulture), "the running dnsmasq was adopted");
            (await outside.RunAsync("busybox", "wget", "-q", "-O", "-", "http://192.168.79.1:8080/")).Should().StartWith("hypercore guest");

            foreach (var id in new[] { "web", "api" })
            {
                await client.DeleteMicroVmAsync(id);
                await client.WaitForDeletionAsync(id, Patience);
            }

            (await ns.RunAsync("nft", "list", "tables")).Should().NotContain("hypercore");
            (await File.ReadAllTextAsync(Path.Combine(state, "network", "dhcp-hosts"))).Should().BeEmpty();
            var links = (await ns.RunAsync("ip", "-o", "link", "show")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(':')[1].Trim().Split('@')[0]);
            links.Should().BeEquivalentTo(["lo", "hcbr0", "hcup0"], "delete leaves no tap");
            (await outside.TryAsync("busybox", "wget", "-q", "-O", "-", "http://192.168.79.1:8080/")).Succeeded.Should().BeFalse();
        }
        finally
        {
            TestContext.Progress.WriteLine(daemon.Stderr.Length > 4000 ? daemon.Stderr[^4000..] : daemon.Stderr);
            await daemon.DisposeAsync();
            ns.KillAllIn(); // QEMU guests and dnsmasq live in the namespace
            await Task.Delay(500);
            Directory.Delete(root, recursive: true);
        }
    }

    private static string Ip(string cidr) => cidr.Split('/')[0];

    private static async Task<MicroVM> RunAsync(HypercoreClient client, string id, string? fetch, params PortMapping[] ports)
    {
        var spec = new MicroVMSpec { Id = id, Namespace = "default", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "default" } };
        spec.Kernel.Cmdline["hypercore.dhcp"] = "";
        spec.Kernel.Cmdline["hypercore.httpd"] = "80";
        if (fetch is not null)
        {
            spec.Kernel.Cmdline["hypercore.fetch"] = fetch;
        }

        var nic = new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap };
        nic.Ports.Add(ports);
        spec.Interfaces.Add(nic);
        await client.CreateMicroVmAsync(spec);
        return await client.WaitForPhaseAsync(id, "Running", Patience);
    }

    private static async Task WaitForConsoleAsync(MicroVM vm, string line)
    {
        var sw = Stopwatch.StartNew();
        var path = vm.Status.ConsoleLogPath;
        while (!(File.Exists(path) && (await File.ReadAllTextAsync(path)).Contains(line, StringComparison.Ordinal)))
        {
            if (sw.Elapsed > Patience)
            {
                Assert.Fail($"the guest did not print \"{line}\"; console:\n{(File.Exists(path) ? await File.ReadAllTextAsync(path) : "(none)")}");
            }

            await Task.Delay(250);
        }
    }
}
