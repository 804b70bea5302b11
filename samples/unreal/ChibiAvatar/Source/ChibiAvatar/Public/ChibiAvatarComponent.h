// UChibiAvatarComponent: talks to the chibi-avatar websocket service (server/PROTOCOL.md) with
// Unreal's WebSockets module and the portable protocol core in Private/Protocol.
// Blueprint: Connect, then Generate From Photo File / Generate From Params; bind On Progress,
// On Avatar Ready (the .glb/.vrm bytes) and On Error (stable code). Load the bytes with
// glTFRuntime ("glTF Load Asset from Data") or save them and use VRM4U (see the README).
// NOT compiled in the chibi-avatar CI (there is no Unreal Engine there); see samples/unreal/README.md.
#pragma once

#include "Components/ActorComponent.h"
#include "CoreMinimal.h"
#include "ChibiAvatarComponent.generated.h"

class IWebSocket;
struct FChibiConnection;

DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FChibiConnectedSignature, bool, bPhotoAvailable);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FChibiProgressSignature, const FString&, RequestId, const FString&, Stage, float, ElapsedMs);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FChibiAvatarReadySignature, const FString&, RequestId, const FString&, Format, const TArray<uint8>&, Model);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_FourParams(FChibiErrorSignature, const FString&, RequestId, const FString&, Code, const FString&, Message, const FString&, Field);

UCLASS(ClassGroup = (ChibiAvatar), meta = (BlueprintSpawnableComponent))
class CHIBIAVATAR_API UChibiAvatarComponent : public UActorComponent
{
    GENERATED_BODY()

public:
    /** ws://HOST:PORT/ws of `chibi serve` (wss:// when the server has TLS). */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Chibi Avatar")
    FString ServerUrl = TEXT("ws://127.0.0.1:8765/ws");

    /** Bearer token, sent in the Authorization header of the upgrade request (empty: none). */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Chibi Avatar")
    FString Token;

    /** glb (glTFRuntime), vrm1 or vrm0 (VRM4U). */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Chibi Avatar")
    FString Format = TEXT("glb");

    /** default (VRChat Quest "Excellent" budget) or high. */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Chibi Avatar")
    FString Quality = TEXT("default");

    /** VRM formats: embed the 1024 px thumbnail. Off: avatars loaded at run time never show
     *  it, and the server answers in about half the time. */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Chibi Avatar")
    bool bThumbnail = true;

    UPROPERTY(BlueprintAssignable, Category = "Chibi Avatar")
    FChibiConnectedSignature OnConnected;

    UPROPERTY(BlueprintAssignable, Category = "Chibi Avatar")
    FChibiProgressSignature OnProgress;

    /** One avatar arrived, its bytes checked against the announced size and checksum (CRC-32, or SHA-256 from older servers). */
    UPROPERTY(BlueprintAssignable, Category = "Chibi Avatar")
    FChibiAvatarReadySignature OnAvatarReady;

    /** A request (RequestId set) or the connection (RequestId empty) failed; Code is stable. */
    UPROPERTY(BlueprintAssignable, Category = "Chibi Avatar")
    FChibiErrorSignature OnError;

    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    void Connect();

    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    void Disconnect();

    /** Builds an avatar from an AvatarParams JSON object; returns the request id ("" if refused). */
    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    FString GenerateFromParams(const FString& ParamsJson);

    /** Sends encoded photo bytes (JPEG/PNG/...); returns the request id ("" if refused). */
    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    FString GenerateFromPhoto(const TArray<uint8>& PhotoBytes);

    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    FString GenerateFromPhotoFile(const FString& Path);

    /** Asks the server to stop a request; it then ends with OnError code "cancelled". */
    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    void Cancel(const FString& RequestId);

    /** Writes model bytes to a file (e.g. under FPaths::ProjectSavedDir()) for VRM4U's Load VRM File. */
    UFUNCTION(BlueprintCallable, Category = "Chibi Avatar")
    static bool SaveModel(const TArray<uint8>& Model, const FString& Path);

protected:
    virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
    void HandleConnected();
    void HandleConnectionError(const FString& Error);
    void HandleClosed(int32 StatusCode, const FString& Reason, bool bWasClean);
    void HandleText(const FString& Message);
    void HandleBinary(const void* Data, SIZE_T Size, bool bIsLastFragment);
    FString Start(const FString* ParamsJson, const TArray<uint8>* PhotoBytes);

    TSharedPtr<IWebSocket> Socket;
    TSharedPtr<FChibiConnection> Connection;  // the protocol session (plain C++), see the .cpp
};
