"""POST /floor/memory: bearer key -> one indexed ApiKey lookup by hash, Fernet-encrypt the
content, INSERT one memories_memory row. No validation beyond presence, no rate limit, no
term index, no full serializer: the floor the real create endpoint is measured against."""

import uuid

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.models import ApiKey, hash_key
from memories.models import Memory


class FloorKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        api_key = ApiKey.objects.filter(key_hash=hash_key(token.strip())).first()
        if scheme.lower() != "bearer" or api_key is None or api_key.is_revoked:
            raise exceptions.AuthenticationFailed("Authentication required")
        return api_key, api_key

    def authenticate_header(self, request):
        return "Bearer"


class FloorCreateView(APIView):
    authentication_classes = [FloorKeyAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = []

    def post(self, request):
        data = request.data
        content, user_id = data.get("content"), data.get("user_id")
        if not isinstance(content, str) or not isinstance(user_id, str):
            raise exceptions.ValidationError({"detail": "user_id and content are required"})
        now = timezone.now()
        memory = Memory(
            id=uuid.uuid4(),
            owner_id=request.auth.owner_id,
            user_id=user_id,
            type=data.get("type") or "fact",
            content=content,  # EncryptedTextField: Fernet on the way in
            created_at=now,
            updated_at=now,
        )
        memory.save(force_insert=True)
        return Response({"id": str(memory.id), "created_at": now.isoformat()})
