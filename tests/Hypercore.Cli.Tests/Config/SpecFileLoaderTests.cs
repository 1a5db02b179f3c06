using Hypercore.Cli.Config;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Config;

public sealed class SpecFileLoaderTests
{
    [Test]
    public void Parse_YamlWithQuotedAndPlainScalars_KeepsTypes()
    {
        var spec = SpecFileLoader.Parse("""
            id: "007"
            vcpu: 2
            kernel:
              image: default
              addNetworkConfig: true
              cmdline:
                console: ttyS0
                quiet: ""
            provider: ~
            """, isJson: false, "spec.yaml");

        spec.Should().Be(new MicroVMSpec
        {
            Id = "007",
            Vcpu = 2,
            Kernel = new Kernel { Image = "default", AddNetworkConfig = true, Cmdline = { ["console"] = "ttyS0", ["quiet"] = "" } },
        });
    }

    [Test]
    public void Parse_TwoYamlDocuments_ThrowsUsage()
    {
        var parse = () => SpecFileLoader.Parse("id: a\n---\nid: b\n", isJson: false, "spec.yaml");

        parse.Should().Throw<UsageException>().WithMessage("*exactly one YAML document*");
    }

    [Test]
    public void Parse_JsonArray_ThrowsUsage()
    {
        var parse = () => SpecFileLoader.Parse("[1]", isJson: true, "spec.json");

        parse.Should().Throw<UsageException>();
    }
}
