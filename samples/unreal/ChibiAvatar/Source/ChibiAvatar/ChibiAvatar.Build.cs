// NOT compiled in the chibi-avatar CI (there is no Unreal Engine there); see samples/unreal/README.md.
using System.IO;
using UnrealBuildTool;

public class ChibiAvatar : ModuleRules
{
    public ChibiAvatar(ReadOnlyTargetRules Target) : base(Target)
    {
        PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
        PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "WebSockets" });
        // The protocol core (Private/Protocol) is plain C++17 that reports errors as values,
        // so it builds with Unreal's defaults (exceptions and RTTI off) and also outside Unreal.
        PrivateIncludePaths.Add(Path.Combine(ModuleDirectory, "Private", "Protocol"));
        bEnableExceptions = false;
    }
}
