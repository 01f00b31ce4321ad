-- Who joined which festival chat room (the seed's user_chat_room); room id = festival id.
CREATE TABLE IF NOT EXISTS chat_room_members (
    chat_room_id BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,
    joined_at    BIGINT NOT NULL,
    PRIMARY KEY (chat_room_id, user_id)
);
CREATE INDEX IF NOT EXISTS chat_room_members_by_user ON chat_room_members (user_id, chat_room_id);
