using Hypercore.Client;

namespace Hypercore.Cli.Tests.Client;

public sealed class HypercoreAddressTests
{
    [TestCase("localhost:9090", "http://localhost:9090/")]
    [TestCase("localhost", "http://localhost:9090/")]
    [TestCase("10.0.0.5:8080", "http://10.0.0.5:8080/")]
    [TestCase("10.0.0.5:80", "http://10.0.0.5/")]
    [TestCase("[::1]:7000", "http://[::1]:7000/")]
    [TestCase("[::1]", "http://[::1]:9090/")]
    [TestCase("http://node1:9000", "http://node1:9000/")]
    [TestCase("https://node1", "https://node1/")]
    public void Parse_Accepted_GivesGrpcAddress(string text, string expected) =>
        HypercoreAddress.Parse(text).ToString().Should().Be(expected);

    [TestCase("")]
    [TestCase("ftp://node1")]
    [TestCase("http://node1:9000/api")]
    [TestCase("node1:notaport")]
    [TestCase("user@node1:9090")]
    public void Parse_Rejected_ThrowsFormatException(string text)
    {
        var parse = () => HypercoreAddress.Parse(text);

        parse.Should().Throw<FormatException>();
    }
}
