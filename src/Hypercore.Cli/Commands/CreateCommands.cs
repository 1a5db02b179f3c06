using System.CommandLine;
using Hypercore.Cli.Config;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>
/// `vis run` (create, then wait for Running) and `vis create` (create, optionally wait). The VM comes from
/// a hac.toml (--config), a full spec file (create -f), or flags alone; flags override the file.
/// </summary>
internal static class CreateCommands
{
    public static Command Run(Cli.CommandRunner runner)
    {
        var command = new Command("run", "Create a microVM from hac.toml and/or flags and wait until it is Running");
        var flags = new SpecFlags(withSpecFile: false);
        flags.AddTo(command);
        var noWait = new Option<bool>("--no-wait") { Description = "Return once the daemon has stored the VM, without waiting for it to run" };
        var timeout = SharedOptions.Timeout();
        var waitReady = new Option<bool>("--wait-ready")
        {
            Description = $"Wait for the guest to be ready (GuestReady); without a readiness probe, adds --ready-console {ProbeFlags.DefaultReadyRegex} (the default image's ready line)",
        };
        command.Add(noWait);
        command.Add(timeout);
        command.Add(waitReady);
        runner.SetAction(command, (inv, ct) => CreateAsync(
            inv, flags, wait: !inv.Parse.GetValue(noWait), inv.Parse.GetTimeout(timeout), ct, defaultReadiness: inv.Parse.GetValue(waitReady)));
        return command;
    }

    public static Command Create(Cli.CommandRunner runner)
    {
        var command = new Command("create", "Create a microVM from hac.toml, a MicroVMSpec file (JSON/YAML) and/or flags");
        var flags = new SpecFlags(withSpecFile: true);
        flags.AddTo(command);
        var wait = new Option<bool>("--wait") { Description = "Wait until the VM reaches its desired state (Running unless the spec says otherwise)" };
        var timeout = SharedOptions.Timeout();
        command.Add(wait);
        command.Add(timeout);
        runner.SetAction(command, (inv, ct) => CreateAsync(inv, flags, inv.Parse.GetValue(wait), inv.Parse.GetTimeout(timeout), ct));
        return command;
    }

    private static async Task<int> CreateAsync(Invocation inv, SpecFlags flags, bool wait, TimeSpan timeout, CancellationToken ct, bool defaultReadiness = false)
    {
        // Everything local is checked before the daemon is contacted: a bad file sends nothing.
        var spec = flags.BuildSpec(inv);
        if (defaultReadiness && spec.ReadinessProbe is null)
        {
            // Guest health: the default image's ready line, looked for on every tick (a console probe needs no network).
            spec.ReadinessProbe = new Probe { Console = new ConsoleProbe { Regex = ProbeFlags.DefaultReadyRegex }, PeriodSeconds = 1, FailureThreshold = 1 };
        }

        if (flags.FromSnapshot(inv) is { } snapshot)
        {
            await FromSnapshotAsync(inv, spec, snapshot, ct);
        }

        var vm = await inv.Client.CreateMicroVmAsync(spec, ct);
        if (wait)
        {
            var target = vm.Spec.State switch
            {
                DesiredStates.Stopped => MicroVmPhases.Stopped,
                DesiredStates.Paused => MicroVmPhases.Paused,
                _ => MicroVmPhases.Running,
            };
            // The spinner must be gone before the result goes to stdout, which is often the same terminal.
            await using (var progress = inv.Progress())
            {
                // Guest health: with a readiness probe, Running is not the end of the wait; GuestReady is.
                vm = target == MicroVmPhases.Running && vm.Spec.ReadinessProbe is not null
                    ? await inv.Client.WaitForGuestReadyAsync(vm.Spec.Id, timeout, progress, vm.Spec.Namespace, ct)
                    : await inv.Client.WaitForPhaseAsync(vm.Spec.Id, target, timeout, progress, vm.Spec.Namespace, ct);
            }
        }

        inv.Printer.PrintOne(vm);
        return ExitCodes.Ok;
    }

    /// <summary>
    /// snapshots: the VM starts from the snapshot and runs its hardware, so the spec takes the source's kernel,
    /// initrd, vcpus, memory, volumes, interfaces and provider (the daemon uses the snapshot's anyway; a spec that
    /// says the same reads true in `vis get`), and its namespace unless -n says otherwise.
    /// </summary>
    private static async Task FromSnapshotAsync(Invocation inv, MicroVMSpec spec, string name, CancellationToken ct)
    {
        var snapshot = await SnapshotCommands.GetAsync(inv, name, ct);
        var source = snapshot.SourceSpec;
        spec.RestoreFrom = name;
        spec.Namespace = inv.Namespace ?? snapshot.Namespace;
        spec.Kernel = source.Kernel;
        spec.Initrd = source.Initrd;
        spec.Vcpu = source.Vcpu;
        spec.MemoryInMb = source.MemoryInMb;
        spec.RootVolume = source.RootVolume;
        spec.AdditionalVolumes.Clear();
        spec.AdditionalVolumes.Add(source.AdditionalVolumes);
        spec.Interfaces.Clear();
        spec.Interfaces.Add(source.Interfaces);
        spec.Provider = snapshot.Provider;
    }

    /// <summary>The flags that describe a VM, and how they combine with hac.toml or a spec file.</summary>
    private sealed class SpecFlags(bool withSpecFile)
    {
        private readonly Option<FileInfo?> _config = new("--config", "-c") { Description = "hac.toml describing the VM", HelpName = "hac.toml" };
        private readonly Option<FileInfo?> _file = new("--file", "-f") { Description = "Full MicroVMSpec in protobuf JSON, or the same as YAML", HelpName = "spec.json|yaml" };
        private readonly Option<string?> _name = new("--name") { Description = "VM id (overrides name in the file)" };
        private readonly Option<string?> _image = new("--image") { Description = "Image name in the node's image directory, an absolute kernel path, or an OCI reference (registry/repo:tag, pulled by the node) [default: default]" };
        private readonly Option<int?> _memory = SharedOptions.WholeNumber("--memory", "a whole number of MiB", "Memory in MiB [default: 128]", "MiB");
        private readonly Option<int?> _cpu = SharedOptions.WholeNumber("--cpu", "a whole number of vCPUs", "Number of vCPUs [default: 1]");
        private readonly Option<int?> _disk = SharedOptions.WholeNumber("--disk", "a whole number of MiB (0 for no disk)", "Scratch disk size in MiB, 0 for none", "MiB");
        private readonly Option<int?> _network = SharedOptions.WholeNumber("--network", "a whole number of tap interfaces (0 for none)", "Number of tap interfaces, 0 for none");
        private readonly Option<string?> _provider = new("--provider") { Description = "Hypervisor: qemu, firecracker, cloud-hypervisor, unikernel [default: the node's]" };
        private readonly Option<string?> _restartPolicy = new("--restart-policy") { Description = "Always, OnFailure or Never [default: Always]" };
        private readonly Option<string?> _fromSnapshot = new("--from-snapshot") { Description = "Start from this snapshot (its hardware, memory and disks) instead of booting", HelpName = "NAME" };

        /// <summary>The --from-snapshot name; refuses the flags that would set hardware the snapshot decides.</summary>
        public string? FromSnapshot(Invocation inv)
        {
            if (inv.Parse.GetValue(_fromSnapshot) is not { } name)
            {
                return null;
            }

            var p = inv.Parse;
            var conflicting = new (string Flag, bool Given)[]
            {
                ("--image", p.GetValue(_image) is not null), ("--memory", p.GetValue(_memory) is not null), ("--cpu", p.GetValue(_cpu) is not null),
                ("--disk", p.GetValue(_disk) is not null), ("--network", p.GetValue(_network) is not null), ("--provider", p.GetValue(_provider) is not null),
            }.Where(c => c.Given).Select(c => c.Flag).ToList();
            return conflicting.Count == 0
                ? name
                : throw new UsageException($"--from-snapshot takes the VM's hardware from the snapshot; drop {string.Join(", ", conflicting)}");
        }

        // Guest health (issue 14).
        private readonly ProbeFlags _readiness = new("ready", "readiness");
        private readonly ProbeFlags _liveness = new("live", "liveness");
        private readonly ProbeFlags _startup = new("startup", "startup");

        // Kubernetes (issue 13)
        private readonly PlacementFlags _placement = new();

        public void AddTo(Command command)
        {
            command.Add(_config);
            if (withSpecFile)
            {
                command.Add(_file);
            }

            command.Add(_name);
            command.Add(_image);
            command.Add(_memory);
            command.Add(_cpu);
            command.Add(_disk);
            command.Add(_network);
            command.Add(_provider);
            command.Add(_restartPolicy);
            _readiness.AddTo(command);
            _liveness.AddTo(command);
            _startup.AddTo(command);
            command.Add(_fromSnapshot);
            _placement.AddTo(command);
        }

        public MicroVMSpec BuildSpec(Invocation inv)
        {
            var p = inv.Parse;
            var config = p.GetValue(_config);
            var file = withSpecFile ? p.GetValue(_file) : null;
            if (config is not null && file is not null)
            {
                throw new UsageException("use either --config (hac.toml) or --file (MicroVMSpec), not both");
            }

            var spec = file is not null
                ? SpecFileLoader.Load(file.FullName)
                : (config is not null ? HacConfigParser.Load(config.FullName) : new HacConfig()).ToTemplate().ToSpec();

            if (p.GetValue(_name) is { } name)
            {
                spec.Id = name;
            }

            if (inv.Namespace is { } ns)
            {
                spec.Namespace = ns;
            }

            if (p.GetValue(_image) is { } image)
            {
                spec.Kernel ??= new Kernel();
                spec.Kernel.Image = image;
            }

            if (p.GetValue(_memory) is { } memory)
            {
                spec.MemoryInMb = memory > 0 ? memory : throw new UsageException($"--memory must be a positive number of MiB, got {memory}");
            }

            if (p.GetValue(_cpu) is { } cpu)
            {
                spec.Vcpu = cpu > 0 ? cpu : throw new UsageException($"--cpu must be at least 1, got {cpu}");
            }

            if (p.GetValue(_disk) is { } disk)
            {
                SetScratchDisk(spec, disk >= 0 ? disk : throw new UsageException($"--disk must be zero or more MiB, got {disk}"));
            }

            if (p.GetValue(_network) is { } network)
            {
                SetTapInterfaces(spec, network >= 0 ? network : throw new UsageException($"--network must be zero or more interfaces, got {network}"));
            }

            if (p.GetValue(_provider) is { } provider)
            {
                spec.Provider = provider;
            }

            if (p.GetValue(_restartPolicy) is { } policy)
            {
                spec.RestartPolicy = RestartPolicies.Normalize(policy)
                    ?? throw new UsageException($"--restart-policy must be one of {string.Join(", ", RestartPolicies.All)}, got \"{policy}\"");
            }

            spec.ReadinessProbe = _readiness.Apply(p, spec.ReadinessProbe);
            spec.LivenessProbe = _liveness.Apply(p, spec.LivenessProbe);
            spec.StartupProbe = _startup.Apply(p, spec.StartupProbe);
            _placement.Apply(p, spec);

            if (string.IsNullOrEmpty(spec.Id))
            {
                throw new UsageException(file is not null
                    ? "the spec file has no id; set it there or with --name"
                    : "a name is required: --name NAME or name = \"...\" in hac.toml");
            }

            return spec;
        }

        private static void SetScratchDisk(MicroVMSpec spec, int sizeInMb)
        {
            var existing = spec.AdditionalVolumes.Where(v => v.Id == MicroVmTemplate.ScratchDiskId).ToList();
            foreach (var volume in existing)
            {
                spec.AdditionalVolumes.Remove(volume);
            }

            if (sizeInMb > 0)
            {
                var template = new MicroVmTemplate { Name = spec.Id, DiskInMb = sizeInMb }.ToSpec();
                spec.AdditionalVolumes.Add(template.AdditionalVolumes);
            }
        }

        private static void SetTapInterfaces(MicroVMSpec spec, int count)
        {
            spec.Interfaces.Clear();
            spec.Interfaces.Add(new MicroVmTemplate { Name = spec.Id, NetworkInterfaces = count }.ToSpec().Interfaces);
        }
    }
}
