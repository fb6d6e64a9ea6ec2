package io.duet.proxy.impl;

import io.duet.proxy.ChatMessage;
import io.duet.proxy.ChatTemplate;
import java.util.ArrayList;
import java.util.List;

/**
 * llama2.c's chat format (see {@link ChatTemplate}): {@code run.c} renders a turn with a system
 * prompt as {@code "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]"} and one without as
 * {@code "[INST] %s [/INST]"}; earlier assistant replies sit between the turns as
 * {@code " %s "}.
 */
final class Llama2ChatTemplate implements ChatTemplate {

  @Override
  public String name() {
    return LLAMA2;
  }

  @Override
  public String render(List<ChatMessage> messages) {
    StringBuilder system = new StringBuilder();
    List<String[]> turns = new ArrayList<>();
    String lastRole = null;
    for (ChatMessage message : messages) {
      switch (message.role()) {
        case ChatMessage.SYSTEM -> {
          if (system.length() > 0) {
            system.append("\n\n");
          }
          system.append(message.content());
        }
        case ChatMessage.USER -> {
          if (ChatMessage.USER.equals(lastRole)) {
            String[] turn = turns.get(turns.size() - 1);
            turn[0] = turn[0] + "\n" + message.content();
          } else {
            turns.add(new String[] {message.content(), null});
          }
          lastRole = ChatMessage.USER;
        }
        default -> {
          if (turns.isEmpty()) {
            throw new IllegalArgumentException(
                "the llama2 chat template needs a user message before the first assistant message");
          }
          String[] turn = turns.get(turns.size() - 1);
          turn[1] = turn[1] == null ? message.content() : turn[1] + "\n" + message.content();
          lastRole = ChatMessage.ASSISTANT;
        }
      }
    }
    if (turns.isEmpty()) {
      throw new IllegalArgumentException("the conversation has no user message");
    }
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < turns.size(); i++) {
      String[] turn = turns.get(i);
      if (i == 0 && system.length() > 0) {
        out.append("[INST] <<SYS>>\n").append(system).append("\n<</SYS>>\n\n").append(turn[0])
            .append(" [/INST]");
      } else {
        out.append("[INST] ").append(turn[0]).append(" [/INST]");
      }
      if (turn[1] != null) {
        out.append(' ').append(turn[1]).append(' ');
      }
    }
    return out.toString();
  }
}
