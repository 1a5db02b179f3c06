using System.CommandLine;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>
/// Kubernetes (issue 13): `--node-selector`, `--toleration`, `--affinity-json` and `--priority-class` fill the spec's
/// placement (Kubernetes store only: kube-scheduler picks the node through the MicroVM's reservation pod). The flags
/// are read here; what they say is checked by the daemon (InvalidArgument).
/// </summary>
internal sealed class PlacementFlags
{
    private readonly Option<string[]> _nodeSelector = new("--node-selector")
    {
        Description = "Kubernetes: a node label the node must have (repeatable); kube-scheduler picks the node", HelpName = "key=value",
    };

    private readonly Option<string[]> _toleration = new("--toleration")
    {
        Description = "Kubernetes: a taint to tolerate (repeatable): key=value:Effect (Equal), key:Effect or key (Exists)", HelpName = "key[=value][:effect]",
    };

    private readonly Option<string?> _affinity = new("--affinity-json") { Description = "Kubernetes: a core/v1 Affinity as JSON", HelpName = "json" };

    private readonly Option<string?> _priorityClass = new("--priority-class") { Description = "Kubernetes: priority class of the reservation pod", HelpName = "name" };

    public void AddTo(Command command)
    {
        command.Add(_nodeSelector);
        command.Add(_toleration);
        command.Add(_affinity);
        command.Add(_priorityClass);
    }

    /// <summary>Applies the flags given to <paramref name="spec"/>'s placement (made when a flag needs it).</summary>
    public void Apply(ParseResult p, MicroVMSpec spec)
    {
        var selectors = p.GetValue(_nodeSelector) ?? [];
        var tolerations = p.GetValue(_toleration) ?? [];
        var affinity = p.GetValue(_affinity);
        var priority = p.GetValue(_priorityClass);
        if (selectors.Length == 0 && tolerations.Length == 0 && affinity is null && priority is null)
        {
            return;
        }

        var placement = spec.Placement ??= new Placement();
        foreach (var selector in selectors)
        {
            var eq = selector.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new UsageException($"--node-selector takes key=value, got \"{selector}\"");
            }

            placement.NodeSelector[selector[..eq]] = selector[(eq + 1)..];
        }

        foreach (var text in tolerations)
        {
            placement.Tolerations.Add(ParseToleration(text));
        }

        if (affinity is not null)
        {
            placement.AffinityJson = affinity;
        }

        if (priority is not null)
        {
            placement.PriorityClassName = priority;
        }
    }

    internal static Toleration ParseToleration(string text)
    {
        var colon = text.LastIndexOf(':');
        var (keyValue, effect) = colon >= 0 ? (text[..colon], text[(colon + 1)..]) : (text, "");
        var eq = keyValue.IndexOf('=', StringComparison.Ordinal);
        var toleration = eq >= 0
            ? new Toleration { Key = keyValue[..eq], Operator = "Equal", Value = keyValue[(eq + 1)..], Effect = effect }
            : new Toleration { Key = keyValue, Operator = "Exists", Effect = effect };
        return toleration.Key.Length > 0 || toleration.Operator == "Exists"
            ? toleration
            : throw new UsageException($"--toleration takes key[=value][:effect], got \"{text}\"");
    }
}
