package io.duet.proxy.impl;

import io.duet.proxy.ChatMessage;
import io.duet.proxy.ChatTemplate;
import java.util.List;

/**
 * DeepSeek-V3's chat format (see {@link ChatTemplate}), as the Jinja template of its
 * {@code tokenizer_config.json} renders system, user and assistant messages with
 * {@code add_generation_prompt}: BOS, every system message joined by a blank line, then each
 * user message as {@code <｜User｜>{content}} and each assistant message as
 * {@code <｜Assistant｜>{content}<｜end▁of▁sentence｜>} in order, and finally
 * {@code <｜Assistant｜>}. The BOS is written as text, like the template does; the engine's
 * tokenizer does not add a second one.
 */
final class DeepSeekV3ChatTemplate implements ChatTemplate {

  static final String BOS = "<｜begin▁of▁sentence｜>";
  static final String EOS = "<｜end▁of▁sentence｜>";
  static final String USER = "<｜User｜>";
  static final String ASSISTANT = "<｜Assistant｜>";

  @Override
  public String name() {
    return DEEPSEEK_V3;
  }

  @Override
  public String render(List<ChatMessage> messages) {
    StringBuilder out = new StringBuilder(BOS);
    boolean firstSystem = true;
    for (ChatMessage message : messages) {
      if (message.role().equals(ChatMessage.SYSTEM)) {
        out.append(firstSystem ? "" : "\n\n").append(message.content());
        firstSystem = false;
      }
    }
    for (ChatMessage message : messages) {
      switch (message.role()) {
        case ChatMessage.USER -> out.append(USER).append(message.content());
        case ChatMessage.ASSISTANT -> out.append(ASSISTANT).append(message.content()).append(EOS);
        default -> { } // system messages are all at the start
      }
    }
    return out.append(ASSISTANT).toString();
  }
}
