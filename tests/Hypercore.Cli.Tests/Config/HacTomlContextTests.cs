using System.Globalization;
using Hypercore.Cli.Config;
using Tomlyn;
using Tomlyn.Model;

namespace Hypercore.Cli.Tests.Config;

/// <summary>
/// hac.toml is read through a source-generated context (Native AOT cannot compile Tomlyn's reflection path). The
/// context must give the same table model, and the same error text, as the reflection-based call it replaced.
/// </summary>
public sealed class HacTomlContextTests
{
    private static IEnumerable<string> Documents()
    {
        yield return "";
        yield return "# only a comment\n";
        yield return "name = \"app1\"\nmemory = 128\ncpu = 1\nratio = 0.5\nexp = 1e3\nhex = 0xff\nneg = -7\nflag = true\n";
        yield return "[kernel]\ncmdline = { console = \"ttyS0\", quiet = true, n = 3 }\ninitrd = '/literal\\path'\n";
        yield return "[a.b.c]\nd = 1\n[a]\ne = \"x\"\n";
        yield return "dotted.key = 1\n\"quoted key\" = \"v\"\nlist = [1, 2, [\"x\", \"y\"], { in = \"line\" }]\n";
        yield return "[[arr]]\nx = 1\n[[arr]]\nx = 2\n";
        yield return "when = 1979-05-27T07:32:00Z\nlocal = 1979-05-27T07:32:00\nday = 1979-05-27\ntime = 07:32:00\n";
        yield return "multi = \"\"\"\nline one\nline two\"\"\"\nraw = '''\nC:\\path'''\nesc = \"tab\\there \\u00e9\"\n";
        yield return "inf = inf\nnan = nan\nbig = 9223372036854775807\n";
    }

    private static IEnumerable<string> BadDocuments()
    {
        yield return "name = \"unterminated\n";
        yield return "a = {x=1}\na.y = 2\n";
        yield return "= 1\n";
        yield return "x = [1, \n";
        yield return "big = 9223372036854775808\n";
    }

    private static TomlTable WithContext(string toml, string source) => HacTomlContext.Parse(toml, source);

    private static TomlTable WithReflection(string toml, string source) =>
#pragma warning disable IL2026, IL3050 // the reflection path is the reference the context is compared against (tests run on the JIT)
        TomlSerializer.Deserialize<TomlTable>(toml, new TomlSerializerOptions { SourceName = source }) ?? new TomlTable();
#pragma warning restore IL2026, IL3050

    [TestCaseSource(nameof(Documents))]
    public void Deserialize_WithContext_GivesTheSameModelAsReflection(string toml)
    {
        Dump(WithContext(toml, "hac.toml")).Should().Be(Dump(WithReflection(toml, "hac.toml")));
    }

    [TestCase("name = \"a\"\nname = \"b\"\n", "hac.toml(2,1)", "`name`")]
    [TestCase("[kernel]\ninitrd = \"a\"\n[kernel]\ninitrd = \"b\"\n", "hac.toml(3,", "kernel")]
    public void Parse_KeyOrTableDefinedTwice_IsRefusedNamingTheLine(string toml, string where, string what)
    {
        // The reflection path keeps the last one; TOML forbids a second definition and it hides a typo, so the context refuses it.
        FluentActions.Invoking(() => WithContext(toml, "hac.toml")).Should().Throw<TomlException>()
            .Which.Message.Should().Contain(where).And.Contain(what).And.Contain("already defined");
    }

    [TestCaseSource(nameof(BadDocuments))]
    public void Deserialize_WithContext_FailsWithTheSameMessageAsReflection(string toml)
    {
        var expected = FluentActions.Invoking(() => WithReflection(toml, "dir/hac.toml")).Should().Throw<TomlException>().Which.Message;

        FluentActions.Invoking(() => WithContext(toml, "dir/hac.toml")).Should().Throw<TomlException>().Which.Message.Should().Be(expected);
    }

    [Test]
    public void Parse_InvalidToml_NamesTheFileAndThePosition()
    {
        var parse = () => HacConfigParser.Parse("memory = 128\nname = \"unterminated\n", "conf/app.toml");

        parse.Should().Throw<UsageException>().Which.Message.Should().StartWith("conf/app.toml: invalid TOML: ").And.Contain("conf/app.toml(2,");
    }

    /// <summary>The model as text with every value's CLR type, so a long read as a double (or a table as a dictionary) differs.</summary>
    private static string Dump(object? value) => value switch
    {
        TomlTable t => "{" + string.Join(", ", t.Select(kv => $"{kv.Key}={Dump(kv.Value)}")) + "}",
        TomlTableArray a => "[[" + string.Join(", ", a.Select(Dump)) + "]]",
        TomlArray a => "[" + string.Join(", ", a.Select(Dump)) + "]",
        null => "null",
        IFormattable f => $"{f.GetType().Name}:{f.ToString(null, CultureInfo.InvariantCulture)}",
        _ => $"{value.GetType().Name}:{value}",
    };
}
