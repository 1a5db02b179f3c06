using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Kubernetes.TestServer;

namespace Hypercore.Kubernetes.Tests.Chart;

/// <summary>The Helm chart and the plain manifests, checked without a helm binary (none can be had here).</summary>
public sealed partial class ChartTests
{
    private static string ChartDir => Repo.Path_("charts", "hypercore");

    [GeneratedRegex(@"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")]
    private static partial Regex SemVer();

    [GeneratedRegex(@"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")]
    private static partial Regex ValuesReference();

    [Test]
    public void ChartYaml_IsAHelmV2ApplicationChart()
    {
        var chart = Yaml.ParseFile(Path.Combine(ChartDir, "Chart.yaml"))!.AsObject();

        ((string?)chart["apiVersion"]).Should().Be("v2");
        ((string?)chart["name"]).Should().Be("hypercore", "the chart directory's name");
        ((string?)chart["type"]).Should().Be("application");
        SemVer().IsMatch((string?)chart["version"] ?? "").Should().BeTrue("Helm requires a SemVer 2 version");
        ((string?)chart["appVersion"]).Should().NotBeNullOrWhiteSpace();
        ((string?)chart["description"]).Should().NotBeNullOrWhiteSpace();
    }

    [Test]
    public void DefaultValues_AreAcceptedByValuesSchema()
    {
        var errors = SchemaValidator.Validate(Values(), Schema());

        errors.Should().BeEmpty();
    }

    [TestCase("daemon.grpcPort", "\"9090\"", "must be of type integer")]
    [TestCase("daemon.grpcPort", "70000", "less than or equal to 65535")]
    [TestCase("image.pullPolicy", "\"Sometimes\"", "Unsupported value")]
    [TestCase("daemon.stateDir", "\"relative/dir\"", "should match")]
    [TestCase("rbac.create", "\"yes\"", "must be of type boolean")]
    [TestCase("nodeSelector", "{\"kvm\": true}", "must be of type string")]
    [TestCase("unknownTopLevelKey", "1", "additional property is not allowed")]
    public void ValuesSchema_RejectsWrongValues(string path, string json, string expected)
    {
        var values = Values();
        var parts = path.Split('.');
        var parent = parts[..^1].Aggregate(values, (node, part) => node[part]!.AsObject());
        parent[parts[^1]] = JsonNode.Parse(json);

        var errors = SchemaValidator.Validate(values, Schema());

        errors.Should().Contain(e => e.Field.StartsWith(path, StringComparison.Ordinal) && e.Message.Contains(expected), string.Join("; ", errors));
    }

    [Test]
    public void Templates_ReferenceOnlyValuesThatExist()
    {
        var values = Values();
        var missing = Directory.GetFiles(Path.Combine(ChartDir, "templates"))
            .SelectMany(f => ValuesReference().Matches(File.ReadAllText(f)).Select(m => (File: Path.GetFileName(f), Path: m.Groups[1].Value.TrimStart('.'))))
            .Where(r => !Exists(values, r.Path))
            .Select(r => $"{r.File}: .Values.{r.Path}")
            .Distinct()
            .ToList();

        missing.Should().BeEmpty("every value a template reads has a default in values.yaml");
    }

    [Test]
    public void ChartCrd_IsIdenticalToCrdsDirectory()
    {
        var source = Directory.GetFiles(Repo.Path_("crds"), "*.yaml").Select(Path.GetFileName).Order().ToList();
        var inChart = Directory.GetFiles(Path.Combine(ChartDir, "crds"), "*.yaml").Select(Path.GetFileName).Order().ToList();

        inChart.Should().Equal(source);
        foreach (var file in source)
        {
            File.ReadAllBytes(Path.Combine(ChartDir, "crds", file!)).Should().Equal(File.ReadAllBytes(Repo.Path_("crds", file!)), file);
        }
    }

    [Test]
    public void Crd_DescribesMicroVmAsTheArchitectureSays()
    {
        var crd = Yaml.ParseFile(Repo.CrdFile)!.AsObject();
        var type = ResourceType.FromCrd(crd).Single();

        type.Group.Should().Be("hypercore.vistara.dev");
        type.Version.Should().Be("v1alpha1");
        type.Kind.Should().Be("MicroVM");
        type.Plural.Should().Be("microvms");
        type.ShortNames.Should().Equal("mvm");
        type.Namespaced.Should().BeTrue();
        type.HasStatus.Should().BeTrue();
        type.PrinterColumns.Select(c => c.Name).Should().Equal("Phase", "Ready", "Node", "Provider", "vCPU", "Memory", "Age", "GuestReady");
        var version = crd["spec"]!["versions"]![0]!;
        ((bool)version["served"]!).Should().BeTrue();
        ((bool)version["storage"]!).Should().BeTrue();

        // Structural: every node has a type (no $ref, no untyped nodes); the validator knows every keyword used.
        Untyped(type.Schema!, "").Should().BeEmpty();
        var spec = type.Schema!["properties"]!["spec"]!;
        ((long)spec["properties"]!["vcpu"]!["minimum"]!).Should().Be(1);
        ((long)spec["properties"]!["vcpu"]!["maximum"]!).Should().Be(64);
        ((long)spec["properties"]!["memoryInMb"]!["maximum"]!).Should().Be(1048576);
        spec["required"]!.AsArray().Select(r => (string?)r).Should().Contain("kernel");
        spec["properties"]!["state"]!["enum"]!.AsArray().Select(e => (string?)e).Should().Equal("Running", "Stopped", "Paused");
        spec["properties"]!["restartPolicy"]!["enum"]!.AsArray().Select(e => (string?)e).Should().Equal("Always", "OnFailure", "Never");
    }

    [Test]
    public void SnapshotCrd_DescribesMicroVmSnapshot_WithCheckableRulesAndPrinterColumns()
    {
        var crd = Yaml.ParseFile(Repo.SnapshotCrdFile)!.AsObject();
        var type = ResourceType.FromCrd(crd).Single();

        type.Group.Should().Be("hypercore.vistara.dev");
        type.Kind.Should().Be("MicroVMSnapshot");
        type.Plural.Should().Be("microvmsnapshots");
        type.ShortNames.Should().Equal("mvmsnap");
        type.Namespaced.Should().BeTrue();
        type.HasStatus.Should().BeTrue();
        type.PrinterColumns.Select(c => c.Name).Should().Equal("MicroVM", "Phase", "Node", "Size", "Created", "Reason", "Age");
        Untyped(type.Schema!, "").Should().BeEmpty();
        CelRules.Unchecked(type.Schema!).Should().BeEmpty("the test API server checks every rule, so kubectl tests exercise them");
        type.Schema!["properties"]!["status"]!["properties"]!["phase"]!["enum"]!.AsArray().Select(e => (string?)e)
            .Should().Equal("Pending", "InProgress", "Ready", "Failed");
    }

    [Test]
    public void DaemonSet_Manifest_IsPrivilegedOnTheHostNetworkWithKvmStateAndNodeName()
    {
        var ds = Yaml.ParseAll(File.ReadAllText(Repo.Path_("deploy", "daemonset.yaml"))).Single()!.AsObject();
        var pod = ds["spec"]!["template"]!["spec"]!;
        var container = pod["containers"]![0]!;

        ((bool)pod["hostNetwork"]!).Should().BeTrue();
        ((bool)container["securityContext"]!["privileged"]!).Should().BeTrue();
        container["args"]!.AsArray().Select(a => (string?)a).Take(5).Should().Equal("run", "--store", "kubernetes", "--node-name", "$(NODE_NAME)");
        var env = container["env"]!.AsArray().Single(e => (string?)e!["name"] == "NODE_NAME")!;
        ((string?)env["valueFrom"]!["fieldRef"]!["fieldPath"]).Should().Be("spec.nodeName");
        var volumes = pod["volumes"]!.AsArray().ToDictionary(v => (string)v!["name"]!, v => v!["hostPath"]!);
        ((string?)volumes["kvm"]["path"]).Should().Be("/dev/kvm");
        ((string?)volumes["kvm"]["type"]).Should().Be("CharDevice");
        ((string?)volumes["state"]["path"]).Should().Be("/var/lib/hypercore");
        container["ports"]!.AsArray().Select(p => (int)p!["containerPort"]!).Should().Contain(9090);
        var args = container["args"]!.AsArray().Select(a => (string?)a).ToList();
        args.Should().ContainInOrder("--grpc-endpoint", "https://$(HOST_IP):9090").And.ContainInOrder("--tls-client-ca", "/etc/hypercore/tls/ca.crt")
            .And.NotContain("--insecure").And.NotContain(a => a!.Contains("0.0.0.0"));
        var hostIp = container["env"]!.AsArray().Single(e => (string?)e!["name"] == "HOST_IP")!;
        ((string?)hostIp["valueFrom"]!["fieldRef"]!["fieldPath"]).Should().Be("status.hostIP");
        ((string?)pod["volumes"]!.AsArray().Single(v => (string?)v!["name"] == "tls")!["secret"]!["secretName"]).Should().Be("hypercore-tls");
        container["resources"]!["requests"].Should().NotBeNull();

        // The chart's template carries the same essentials (it cannot be rendered without helm).
        var template = File.ReadAllText(Path.Combine(ChartDir, "templates", "daemonset.yaml"));
        foreach (var needle in new[]
        {
            "hostNetwork: true", "privileged: true", "fieldPath: spec.nodeName", "path: /dev/kvm", "type: CharDevice",
            "- --store\n            - kubernetes", "- --node-name\n            - $(NODE_NAME)", ".Values.nodeSelector", ".Values.tolerations",
            ".Values.resources", "containerPort: {{ .Values.daemon.grpcPort }}", "path: {{ .Values.daemon.stateDir }}",
            "\"https://$(HOST_IP):{{ .Values.daemon.grpcPort }}\"", "fieldPath: status.hostIP", "- --tls-client-ca",
            "secretName: {{ include \"hypercore.tlsSecretName\" . }}",
        })
        {
            template.Should().Contain(needle);
        }
    }

    [Test]
    public void Notes_And_SystemdUnit_SayWhatMatters()
    {
        File.ReadAllText(Path.Combine(ChartDir, "templates", "NOTES.txt")).Should().Contain("kubectl get mvm")
            .And.Contain("client certificate").And.Contain("--tls-cert alice.pem");
        var certificate = File.ReadAllText(Path.Combine(ChartDir, "templates", "certificate.yaml"));
        certificate.Should().Contain("{{- if .Values.tls.certManager.enabled }}").And.Contain("kind: Certificate")
            .And.Contain("secretName: {{ include \"hypercore.tlsSecretName\" . }}");
        var unit = File.ReadAllText(Repo.Path_("deploy", "systemd", "vistarad.service"));
        unit.Should().MatchRegex(@"(?m)^KillMode=process$", "VMs must survive a daemon restart");
        unit.Should().MatchRegex(@"(?m)^ExecStart=/usr/local/bin/vistarad run\b");
        File.ReadAllText(Repo.Path_("deploy", "Dockerfile")).Should().Contain("src/Hypercore.Daemon/Hypercore.Daemon.csproj");
    }

    internal static JsonObject Values() => Yaml.ParseFile(Path.Combine(ChartDir, "values.yaml"))!.AsObject();

    private static JsonObject Schema() => JsonNode.Parse(File.ReadAllText(Path.Combine(ChartDir, "values.schema.json")))!.AsObject();

    private static bool Exists(JsonObject values, string path)
    {
        JsonNode? node = values;
        foreach (var part in path.Split('.'))
        {
            if (node is not JsonObject o || !o.ContainsKey(part))
            {
                return false;
            }

            node = o[part];
        }

        return true;
    }

    private static IEnumerable<string> Untyped(JsonObject schema, string path)
    {
        if (schema["type"] is null && schema["x-kubernetes-int-or-string"] is null && schema["x-kubernetes-preserve-unknown-fields"] is null)
        {
            yield return path.Length == 0 ? "<root>" : path;
        }

        if (schema.ContainsKey("$ref"))
        {
            yield return path + " ($ref)";
        }

        foreach (var (name, sub) in schema["properties"]?.AsObject() ?? [])
        {
            foreach (var p in Untyped(sub!.AsObject(), $"{path}.{name}"))
            {
                yield return p;
            }
        }

        if (schema["items"] is JsonObject items)
        {
            foreach (var p in Untyped(items, path + "[]"))
            {
                yield return p;
            }
        }

        if (schema["additionalProperties"] is JsonObject additional)
        {
            foreach (var p in Untyped(additional, path + "{}"))
            {
                yield return p;
            }
        }
    }
}
