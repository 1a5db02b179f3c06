using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Serialization;

namespace Hypercore.Cli.Config;

/// <summary>
/// Source-generated TOML metadata for the untyped table model: the same parser and table converter as the
/// reflection-based <c>TomlSerializer.Deserialize&lt;TomlTable&gt;(text, options)</c>, without the reflection Native
/// AOT cannot compile.
/// </summary>
[TomlSerializable(typeof(TomlTable))]
internal sealed partial class HacTomlContext : TomlSerializerContext
{
    /// <param name="options">per file: <see cref="TomlSerializerOptions.SourceName"/> names the file in parse errors.</param>
    public HacTomlContext(TomlSerializerOptions options)
        : base(options)
    {
    }

    /// <exception cref="TomlException">
    /// not TOML. The message is the parser's own ("file(line,col) : error : ..."): through a context Tomlyn wraps it in
    /// "Exception while trying to convert TOML value to type ..." at (1,1), which names no line a user could fix.
    /// </exception>
    public static TomlTable Parse(string toml, string sourceName)
    {
        try
        {
            // The table converter keeps the last of a key defined twice (or a table opened twice), which TOML forbids
            // and which hides a typo or a merge slip. After the parse (whose error messages stay as they were), the
            // syntax parser's validation refuses it, naming both lines.
            var table = TomlSerializer.Deserialize(toml, new HacTomlContext(new TomlSerializerOptions { SourceName = sourceName }).TomlTable)
                ?? new TomlTable();
            _ = SyntaxParser.ParseStrict(toml, sourceName, validate: true);
            return table;
        }
        catch (TomlException ex) when (ex.InnerException is TomlException)
        {
            Exception cause = ex;
            while (cause.InnerException is TomlException inner)
            {
                cause = inner;
            }

            throw cause;
        }
    }
}
