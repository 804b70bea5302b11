// NOT compiled in the chibi-avatar CI (there is no Unreal Engine there); see samples/unreal/README.md.
// The protocol logic it drives (chibi_protocol.h) IS compiled and tested there, in the console client.
#include "ChibiAvatarComponent.h"

#include "IWebSocket.h"
#include "Misc/FileHelper.h"
#include "Modules/ModuleManager.h"
#include "WebSocketsModule.h"

#include <string>
#include <vector>

#include "chibi_protocol.h"

namespace
{
std::string ToUtf8(const FString& Text)
{
    FTCHARToUTF8 Utf8(*Text);
    return std::string(Utf8.Get(), Utf8.Length());
}

FString FromUtf8(const std::string& Text)
{
    return FString(UTF8_TO_TCHAR(Text.c_str()));
}
}  // namespace

// The protocol session plus what this component keeps per connection.
struct FChibiConnection
{
    chibi::ClientSession Session;
    TArray<uint8> BinaryMessage;  // fragments of the binary message being received
    // Requests made before the welcome arrived, sent once it does.
    TArray<TFunction<void()>> Deferred;
};

void UChibiAvatarComponent::Connect()
{
    if (Socket.IsValid() && Socket->IsConnected()) return;
    if (!FModuleManager::Get().IsModuleLoaded(TEXT("WebSockets"))) FModuleManager::Get().LoadModule(TEXT("WebSockets"));
    TMap<FString, FString> Headers;
    if (!Token.IsEmpty()) Headers.Add(TEXT("Authorization"), TEXT("Bearer ") + Token);
    Connection = MakeShared<FChibiConnection>();
    Socket = FWebSocketsModule::Get().CreateWebSocket(ServerUrl, FString(), Headers);
    // IWebSocket raises its events on the game thread.
    Socket->OnConnected().AddUObject(this, &UChibiAvatarComponent::HandleConnected);
    Socket->OnConnectionError().AddUObject(this, &UChibiAvatarComponent::HandleConnectionError);
    Socket->OnClosed().AddUObject(this, &UChibiAvatarComponent::HandleClosed);
    Socket->OnMessage().AddUObject(this, &UChibiAvatarComponent::HandleText);
    Socket->OnBinaryMessage().AddUObject(this, &UChibiAvatarComponent::HandleBinary);
    Socket->Connect();
}

void UChibiAvatarComponent::Disconnect()
{
    if (Socket.IsValid())
    {
        Socket->OnConnected().RemoveAll(this);
        Socket->OnConnectionError().RemoveAll(this);
        Socket->OnClosed().RemoveAll(this);
        Socket->OnMessage().RemoveAll(this);
        Socket->OnBinaryMessage().RemoveAll(this);
        if (Socket->IsConnected()) Socket->Close();
    }
    Socket.Reset();
    Connection.Reset();
}

void UChibiAvatarComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
    Disconnect();
    Super::EndPlay(EndPlayReason);
}

FString UChibiAvatarComponent::GenerateFromParams(const FString& ParamsJson)
{
    return Start(&ParamsJson, nullptr);
}

FString UChibiAvatarComponent::GenerateFromPhoto(const TArray<uint8>& PhotoBytes)
{
    return Start(nullptr, &PhotoBytes);
}

FString UChibiAvatarComponent::GenerateFromPhotoFile(const FString& Path)
{
    TArray<uint8> Photo;  // stays in memory; the protocol never writes photos anywhere
    if (!FFileHelper::LoadFileToArray(Photo, *Path))
    {
        OnError.Broadcast(FString(), TEXT("invalid_image"), TEXT("cannot read ") + Path, FString());
        return FString();
    }
    return GenerateFromPhoto(Photo);
}

FString UChibiAvatarComponent::Start(const FString* ParamsJson, const TArray<uint8>* PhotoBytes)
{
    if (!Connection.IsValid()) Connect();
    chibi::ClientSession& Session = Connection->Session;
    const std::string Id = Session.next_id();
    chibi::RequestOptions Options;
    Options.format = ToUtf8(Format);
    Options.quality = ToUtf8(Quality);
    Options.thumbnail = bThumbnail;
    // Copies: the request may be sent later, once the welcome arrived.
    std::string Params = ParamsJson ? ToUtf8(*ParamsJson) : std::string();
    std::vector<uint8_t> Photo = PhotoBytes ? std::vector<uint8_t>(PhotoBytes->GetData(), PhotoBytes->GetData() + PhotoBytes->Num()) : std::vector<uint8_t>();
    const bool bIsPhoto = PhotoBytes != nullptr;
    TFunction<void()> Send = [this, Id, Options, Params, Photo, bIsPhoto]()
    {
        chibi::Error Error;
        std::vector<chibi::Outgoing> Messages;
        if (bIsPhoto)
        {
            Messages = Connection->Session.photo_request(Id, Photo, Options, Error);
        }
        else
        {
            chibi::Json Json;
            std::string Reason;
            if (!chibi::parse_json(Params.empty() ? "{}" : Params, Json, &Reason))
            {
                Error.code = "invalid_params";
                Error.message = "not JSON: " + Reason;
            }
            else
            {
                Messages = Connection->Session.params_request(Id, Json, Options, Error);
            }
        }
        if (!Error.empty())
        {
            OnError.Broadcast(FromUtf8(Id), FromUtf8(Error.code), FromUtf8(Error.message), FString());
            return;
        }
        for (const chibi::Outgoing& Message : Messages)
        {
            if (Message.text) Socket->Send(FromUtf8(Message.data));
            else Socket->Send(Message.data.data(), Message.data.size(), true);
        }
    };
    if (Session.state() == chibi::ClientSession::State::Open) Send();
    else Connection->Deferred.Add(MoveTemp(Send));
    return FromUtf8(Id);
}

void UChibiAvatarComponent::Cancel(const FString& RequestId)
{
    if (Socket.IsValid() && Connection.IsValid() && Socket->IsConnected())
        Socket->Send(FromUtf8(Connection->Session.cancel(ToUtf8(RequestId))));
}

bool UChibiAvatarComponent::SaveModel(const TArray<uint8>& Model, const FString& Path)
{
    return FFileHelper::SaveArrayToFile(Model, *Path);
}

void UChibiAvatarComponent::HandleConnected()
{
    Socket->Send(FromUtf8(Connection->Session.hello(chibi::kProtocolVersion, std::string(), "chibi-unreal/0.1.0")));
}

void UChibiAvatarComponent::HandleConnectionError(const FString& Error)
{
    // A refused upgrade lands here (e.g. HTTP 401 for a wrong token); IWebSocket gives no status code.
    OnError.Broadcast(FString(), TEXT("connection_refused"), Error, FString());
}

void UChibiAvatarComponent::HandleClosed(int32 StatusCode, const FString& Reason, bool bWasClean)
{
    if (!Connection.IsValid()) return;
    std::vector<chibi::Event> Events = Connection->Session.connection_closed(StatusCode, ToUtf8(Reason), bWasClean ? "" : "not clean");
    for (const chibi::Event& Event : Events)
        if (Event.kind == chibi::Event::Kind::Failed || Event.kind == chibi::Event::Kind::ConnectionFailed)
            OnError.Broadcast(FromUtf8(Event.request_id), FromUtf8(Event.error.code), FromUtf8(Event.error.message), FString());
}

void UChibiAvatarComponent::HandleText(const FString& Message)
{
    if (!Connection.IsValid()) return;
    std::vector<chibi::Event> Events = Connection->Session.receive_text(ToUtf8(Message));
    for (chibi::Event& Event : Events)
    {
        switch (Event.kind)
        {
        case chibi::Event::Kind::Welcome:
        {
            OnConnected.Broadcast(Connection->Session.photo_available());
            TArray<TFunction<void()>> Deferred = MoveTemp(Connection->Deferred);
            for (TFunction<void()>& Send : Deferred) Send();
            break;
        }
        case chibi::Event::Kind::Progress:
            OnProgress.Broadcast(FromUtf8(Event.request_id), FromUtf8(Event.progress.stage), float(Event.progress.elapsed_ms));
            break;
        case chibi::Event::Kind::Completed:
            for (const chibi::AvatarResult& Result : Event.results)
            {
                TArray<uint8> Model(Result.model.data(), int32(Result.model.size()));
                OnAvatarReady.Broadcast(FromUtf8(Result.request_id), FromUtf8(Result.format), Model);
            }
            break;
        case chibi::Event::Kind::Failed:
        case chibi::Event::Kind::ConnectionFailed:
            OnError.Broadcast(FromUtf8(Event.request_id), FromUtf8(Event.error.code), FromUtf8(Event.error.message), FromUtf8(Event.error.field));
            break;
        default:
            break;  // accepted, pong, notices
        }
    }
}

void UChibiAvatarComponent::HandleBinary(const void* Data, SIZE_T Size, bool bIsLastFragment)
{
    if (!Connection.IsValid()) return;
    Connection->BinaryMessage.Append(static_cast<const uint8*>(Data), int32(Size));
    if (!bIsLastFragment) return;
    TArray<uint8> Message = MoveTemp(Connection->BinaryMessage);
    std::vector<chibi::Event> Events = Connection->Session.receive_binary(Message.GetData(), size_t(Message.Num()));
    // A chunk completes no request by itself (`done` does); only local failures come back here.
    for (const chibi::Event& Event : Events)
        if (Event.kind == chibi::Event::Kind::Failed)
            OnError.Broadcast(FromUtf8(Event.request_id), FromUtf8(Event.error.code), FromUtf8(Event.error.message), FString());
}
