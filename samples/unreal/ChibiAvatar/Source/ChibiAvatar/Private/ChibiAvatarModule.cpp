// NOT compiled in the chibi-avatar CI (there is no Unreal Engine there); see samples/unreal/README.md.
#include "Modules/ModuleManager.h"

IMPLEMENT_MODULE(FDefaultModuleImpl, ChibiAvatar)
