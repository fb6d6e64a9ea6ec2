package io.duet.proxy.impl;

import io.duet.proxy.ChatMessage;
import io.duet.proxy.ChatTemplate;
import java.util.List;

/** Role-prefixed lines ending with {@code "Assistant:"} (see {@link ChatTemplate}). */
final class PlainChatTemplate implements ChatTemplate {

  @Override
  public String name() {
    return PLAIN;
  }

  @Override
  public String render(List<ChatMessage> messages) {
    StringBuilder out = new StringBuilder();
    for (ChatMessage message : messages) {
      out.append(switch (message.role()) {
        case ChatMessage.SYSTEM -> "System: ";
        case ChatMessage.USER -> "User: ";
        default -> "Assistant: ";
      }).append(message.content()).append('\n');
    }
    return out.append("Assistant:").toString();
  }
}
