-- Chat messages; (room, send_time) is the identity, as in the seed's DynamoDB table. seq is the
-- message's position in the relay's log (Kafka offset), stored once per room.
CREATE TABLE IF NOT EXISTS chat_messages (
    chat_room_id BIGINT  NOT NULL,
    send_time    BIGINT  NOT NULL,
    seq          BIGINT,
    sender_id    BIGINT  NOT NULL,
    sender_name  TEXT    NOT NULL,
    content      TEXT    NOT NULL,
    PRIMARY KEY (chat_room_id, send_time)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_seq ON chat_messages (chat_room_id, seq);
