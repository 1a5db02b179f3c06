using Hypercore.Cli.Config;

namespace Hypercore.Cli.Tests.Config;

public sealed class HacConfigParserTests
{
    [Test]
    public void Parse_FullFile_ReadsEveryKey()
    {
        var config = HacConfigParser.Parse("""
            name = "web1"
            namespace = "lab"
            image = "/boot/vmlinuz"
            memory = 512
            cpu = 2
            disk = 100
            network = 1
            provider = "cloud-hypervisor"
            restart_policy = "onfailure"
            [kernel]
            cmdline = { console = "ttyS0", quiet = true, debug = false, loglevel = 7 }
            initrd = "/boot/initrd.img"
            [metadata]
            owner = "a"
            replicas = 3
            [labels]
            tier = "web"
            """, "hac.toml");

        config.Should().BeEquivalentTo(new HacConfig
        {
            Name = "web1",
            Namespace = "lab",
            Image = "/boot/vmlinuz",
            Memory = 512,
            Cpu = 2,
            Disk = 100,
            Network = 1,
            Provider = "cloud-hypervisor",
            RestartPolicy = "OnFailure",
            Initrd = "/boot/initrd.img",
            Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0", ["quiet"] = "", ["loglevel"] = "7" },
            Metadata = new Dictionary<string, string> { ["owner"] = "a", ["replicas"] = "3" },
            Labels = new Dictionary<string, string> { ["tier"] = "web" },
        });
    }

    [Test]
    public void Parse_ImageReference_IsSentAsTheKernelImageForTheNodeToPull()
    {
        // Images (issue 11): the seed's image accepts an OCI reference; the node pulls it (kernel and its initrd).
        var spec = HacConfigParser.Parse("""
            name = "oci"
            image = "localhost:5000/hypercore/default:1"
            """, "hac.toml").ToTemplate().ToSpec();

        spec.Kernel.Image.Should().Be("localhost:5000/hypercore/default:1");
        spec.Initrd.Should().BeNull("the node uses the image's own boot/initrd.img");
    }

    [Test]
    public void Parse_Empty_LeavesEverythingToDefaults()
    {
        var template = HacConfigParser.Parse("", "hac.toml").ToTemplate() with { Name = "x" };

        template.Image.Should().Be("default");
        template.MemoryInMb.Should().Be(128);
        template.Vcpu.Should().Be(1);
        template.Namespace.Should().Be("default");
    }

    [TestCase("name = \"a\"\ncolour = \"red\"\n", "\"colour\"")]
    [TestCase("[kernel]\nimage = \"x\"\n", "\"kernel.image\"")]
    [TestCase("memory = \"512\"\n", "memory must be an integer, got the string \"512\"")]
    [TestCase("memory = 0\n", "memory must be at least 1, got 0")]
    [TestCase("network = -1\n", "network must be zero or more, got -1")]
    [TestCase("kernel = \"vmlinuz\"\n", "kernel must be a table")]
    [TestCase("restart_policy = \"Sometimes\"\n", "restart_policy must be one of Always, OnFailure, Never")]
    [TestCase("[metadata]\nlist = [1, 2]\n", "metadata.list must be a string, number or boolean, got an array")]
    [TestCase("name = \"unterminated\n", "invalid TOML")]
    [TestCase("name = \"app1\"\nname = \"app2\"\n", "invalid TOML")] // TOML forbids defining a key twice; last-wins would hide a typo
    [TestCase("[kernel]\ninitrd = \"a\"\n[kernel]\ninitrd = \"b\"\n", "invalid TOML")]
    public void Parse_BadFile_ThrowsUsageNamingTheProblem(string toml, string expected)
    {
        var parse = () => HacConfigParser.Parse(toml, "hac.toml");

        parse.Should().Throw<UsageException>().Which.Message.Should().StartWith("hac.toml").And.Contain(expected);
    }
}
